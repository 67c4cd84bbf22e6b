from odoo import api, models


class LoyaltyMlmPointsInput(models.AbstractModel):
    """A wizard with a `points` field a person types (Adjust Points, Donate
    Points): the value is checked when it is stored, before anything else,
    since Infinity cannot even be rounded."""

    _name = "loyalty.mlm.points.input"
    _description = "Points Typed in a Wizard"

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if "points" in vals:
                vals["points"] = self._mlm_check_points(vals["points"])
        return super().create(vals_list)

    def write(self, vals):
        if "points" in vals:
            vals = {**vals, "points": self._mlm_check_points(vals["points"])}
        return super().write(vals)

    @api.model
    def _mlm_check_points(self, value):
        """A finite number of points within a member card's range."""
        cards = self.env["loyalty.card"]
        points = cards._mlm_points_value(value)
        cards._mlm_check_points_range([points])
        return points
