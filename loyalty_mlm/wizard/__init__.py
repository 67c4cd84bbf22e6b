from . import base_partner_merge
from . import loyalty_card_update_balance
from . import loyalty_mlm_points_input
from . import loyalty_mlm_adjust_wizard
from . import loyalty_mlm_stage_wizard
from . import loyalty_mlm_donation_wizard
