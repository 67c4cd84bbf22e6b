from collections import namedtuple

from odoo import api, models
from odoo.tools import SQL, ormcache

# What the server needs of a rule to compute the points a register order
# earns (pos.order._mlm_rule_points), as plain values that can be cached.
RuleData = namedtuple(
    "RuleData",
    "id mode point_mode amount minimum_qty minimum_amount tax_mode filtered",
)


class LoyaltyRule(models.Model):
    _inherit = "loyalty.rule"

    @api.model
    @ormcache("program_id")
    def _mlm_rule_data(self, program_id):
        """The rules of a programme as RuleData, cached: the register's order
        sync recomputes the points of every member order, and the rules
        change rarely (the cache is cleared when one does)."""
        # One query, also with a cold cache (the sync's pinned cost).
        rows = self.env.execute_query(
            SQL(
                """
                SELECT rule.id, rule.mode, rule.reward_point_mode,
                       rule.reward_point_amount, rule.minimum_qty,
                       rule.minimum_amount, rule.minimum_amount_tax_mode,
                       rule.product_category_id IS NOT NULL
                       OR rule.product_tag_id IS NOT NULL
                       OR COALESCE(rule.product_domain, '[]') != '[]'
                       OR EXISTS (
                           SELECT FROM loyalty_rule_product_product_rel rel
                           WHERE rel.loyalty_rule_id = rule.id
                       )
                  FROM loyalty_rule rule
                 WHERE rule.program_id = %s AND rule.active
              ORDER BY rule.id
                """,
                program_id,
            )
        )
        return tuple(RuleData(*row) for row in rows)

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()  # _mlm_rule_data
        return super().create(vals_list)

    def write(self, vals):
        self.env.registry.clear_cache()  # _mlm_rule_data
        return super().write(vals)

    def unlink(self):
        self.env.registry.clear_cache()  # _mlm_rule_data
        return super().unlink()
