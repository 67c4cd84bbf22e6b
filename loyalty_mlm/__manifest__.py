{
    "name": "Loyalty MLM: Member Lifecycle",
    "summary": "Member lifecycle, segment scores and a trusted point ledger "
    "on top of Odoo's loyalty engine",
    "version": "18.0.1.0.0",
    "category": "Sales/Loyalty",
    "website": "https://github.com/loyalty-mlm/loyalty_mlm",
    "author": "loyalty_mlm contributors",
    "license": "LGPL-3",
    "application": True,
    "installable": True,
    "depends": ["contacts", "crm", "sale_loyalty", "pos_loyalty"],
    "data": [
        "security/loyalty_mlm_security.xml",
        "security/ir.model.access.csv",
        "data/loyalty_program_data.xml",
        "data/ir_cron_data.xml",
        "data/loyalty_mlm_stage_data.xml",
        "wizard/loyalty_mlm_adjust_wizard_views.xml",
        "wizard/loyalty_mlm_stage_wizard_views.xml",
        "views/res_config_settings_views.xml",
        "views/res_partner_views_member.xml",
        "views/res_partner_views.xml",
        "views/loyalty_card_views.xml",
        "views/loyalty_mlm_ledger_views.xml",
        "views/loyalty_mlm_stage_views.xml",
        "report/loyalty_mlm_statement_report.xml",
        "views/loyalty_mlm_dashboard_views.xml",
        "views/loyalty_mlm_menus.xml",
    ],
    "demo": [
        "demo/loyalty_mlm_demo.xml",
    ],
    "post_init_hook": "post_init_hook",
    "assets": {
        "web.assets_backend": [
            "loyalty_mlm/static/src/dashboard/*",
        ],
        "point_of_sale._assets_pos": [
            "loyalty_mlm/static/src/pos/**/*",
        ],
        "web.assets_tests": [
            "loyalty_mlm/static/tests/tours/*",
        ],
    },
}
