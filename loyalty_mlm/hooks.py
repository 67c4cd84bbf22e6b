def post_init_hook(env):
    """Start the ledger of cards that existed before the module: one opening
    entry per member card with a balance."""
    programs = (
        env["res.company"].search([("mlm_program_id", "!=", False)]).mlm_program_id
    )
    programs.coupon_ids._mlm_post_opening_balance()
