from . import loyalty_mlm_donation_report
