"""The README's two commands give printable reports out of the box.

`make test`/`make demo` install wkhtmltopdf (PDF reports) and reportlab's
rlPyCairo backend (barcodes): these tests fail, rather than skip, without them.
"""

from odoo.tests import HttpCase, tagged

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@tagged("post_install", "-at_install")
class TestPrintableReports(HttpCase):
    def test_statement_prints_as_pdf(self):
        Report = self.env["ir.actions.report"]
        self.assertEqual(Report.get_wkhtmltopdf_state(), "ok")
        partner = self.env["res.partner"].create({"name": "Statement Reader"})
        # Odoo renders HTML in tests unless asked for the real rendering.
        pdf, kind = Report.with_context(force_report_rendering=True)._render_qweb_pdf(
            "loyalty_mlm.loyalty_mlm_statement_report", partner.ids
        )
        self.assertEqual(kind, "pdf")
        self.assertEqual(pdf[:5], b"%PDF-")

    def test_receipt_barcode_renders(self):
        # The route the POS receipt's coupon codes point to.
        response = self.url_open("/report/barcode/Code128/044-1234-5678")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content[:8], PNG_SIGNATURE)
