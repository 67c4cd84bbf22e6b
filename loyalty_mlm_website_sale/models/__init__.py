from . import loyalty_card
from . import loyalty_mlm_campaign
from . import sale_order
