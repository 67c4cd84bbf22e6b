import publicWidget from "@web/legacy/js/public/public_widget";
import { _t } from "@web/core/l10n/translation";

// "Copy" next to the member's share link on /my/loyalty.
publicWidget.registry.MlmCopyLink = publicWidget.Widget.extend({
    selector: ".o_mlm_copy",
    events: { click: "_onClick" },

    async _onClick(ev) {
        const text = this.el.dataset.mlmCopy;
        try {
            await navigator.clipboard.writeText(text);
        } catch {
            // No clipboard (plain http, old browser): select it to copy by hand.
            this.el.parentElement.querySelector("input")?.select();
            return;
        }
        this.el.textContent = _t("Copied");
    },
});
