{
    "name": "Loyalty MLM: Web Shop",
    "summary": "The member's balance, tier and points to earn in the web shop; "
    "a Web shop channel for campaigns; membership from the first paid order",
    "version": "18.0.1.0.0",
    "category": "Sales/Loyalty",
    "website": "https://github.com/loyalty-mlm/loyalty_mlm",
    "author": "loyalty_mlm contributors",
    "license": "LGPL-3",
    "installable": True,
    # The bridge between loyalty_mlm and Odoo's web shop loyalty: installed
    # by itself when both are, so loyalty_mlm works without a web shop.
    "auto_install": True,
    "depends": ["loyalty_mlm", "website_sale_loyalty"],
    "data": [
        "views/loyalty_mlm_campaign_views.xml",
        "views/website_sale_templates.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "loyalty_mlm_website_sale/static/tests/tours/*",
        ],
    },
}
