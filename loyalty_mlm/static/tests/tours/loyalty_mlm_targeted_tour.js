import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as Dialog from "@point_of_sale/../tests/tours/utils/dialog_util";
import * as Notification from "@point_of_sale/../tests/tours/utils/generic_components/notification_util";
import * as PaymentScreen from "@point_of_sale/../tests/tours/utils/payment_screen_util";
import * as ProductScreen from "@point_of_sale/../tests/tours/utils/product_screen_util";
import * as ReceiptScreen from "@point_of_sale/../tests/tours/utils/receipt_screen_util";
import * as PosLoyalty from "@pos_loyalty/../tests/tours/utils/pos_loyalty_util";
import { registry } from "@web/core/registry";

const PROMO = "15% on your order";

// A Winback-only promotion: not for a Growth customer (nor its promo code),
// applied at once for a Winback one, and the server accepts the paid order.
registry.category("web_tour.tours").add("LoyaltyMlmTargetedPromotionTour", {
    steps: () =>
        [
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Growth Customer"),
            ProductScreen.addOrderline("Letter Tray", "1"),
            {
                content: "No Winback promotion for a Growth customer",
                trigger: `.order-container:not(:has(.orderline:contains('${PROMO}')))`,
            },
            ProductScreen.totalAmountIs("4.80"),
            PosLoyalty.enterCode("WELCOMEBACK"),
            Notification.has(
                "Growth Customer is not eligible for the programme Winback code.",
                "danger"
            ),
            ProductScreen.totalAmountIs("4.80"),
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Winback Customer"),
            {
                content: "The Winback promotion applies for a Winback customer",
                trigger: `.order-container .orderline:contains('${PROMO}')`,
            },
            ProductScreen.totalAmountIs("4.08"),
            ProductScreen.clickPayButton(),
            PaymentScreen.clickPaymentMethod("Bank"),
            PaymentScreen.clickValidate(),
            ReceiptScreen.isShown(),
        ].flat(),
});
