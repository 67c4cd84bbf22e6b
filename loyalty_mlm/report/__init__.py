from . import loyalty_mlm_donation_report
from . import report_points_statement
