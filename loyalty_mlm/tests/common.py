from odoo.tests import TransactionCase, new_test_user


class LoyaltyMlmCommon(TransactionCase):
    """Shared fixtures.

    ============  ==============================  ===============================
    user          groups                          what it stands for
    ============  ==============================  ===============================
    user_loyalty  Loyalty User                    sales staff reading members
    user_manager  Loyalty Manager                 admin configuring rules
    user_plain    Internal User only              someone outside the app
    ============  ==============================  ===============================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.user_loyalty = new_test_user(
            cls.env, login="mlm_user", groups="loyalty_mlm.group_loyalty_mlm_user"
        )
        cls.user_manager = new_test_user(
            cls.env, login="mlm_manager", groups="loyalty_mlm.group_loyalty_mlm_manager"
        )
        cls.user_plain = new_test_user(
            cls.env, login="mlm_plain", groups="base.group_user"
        )
