import { Component, onWillStart, onWillUnmount, useEffect, useRef, useState } from "@odoo/owl";
import { loadBundle } from "@web/core/assets";
import { formatCurrency } from "@web/core/currency";
import { deserializeDate, formatDate } from "@web/core/l10n/dates";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { formatFloat } from "@web/core/utils/numbers";
import { useService } from "@web/core/utils/hooks";
import { Layout } from "@web/search/layout";

const MODEL = "loyalty.mlm.cockpit";
const SNAPSHOTS = "loyalty.mlm.kpi.snapshot";

// Odoo's palette (web graph view): blue, green, red / orange for the points.
const COLORS = {
    earned: "#1f77b4",
    spent: "#2ca02c",
    expired: "#d62728",
    liability: "#ff7f0e",
    neutral: "#6c757d",
};

/**
 * Formats the cockpit's figures: counts, rates (fractions shown as % with
 * one decimal) and amounts in the company currency.
 */
export function formatKpi(value, format, currencyId) {
    if (value === null || value === undefined) {
        return "–";
    }
    if (format === "percent") {
        return `${formatFloat(value * 100, { digits: [69, 1] })} %`;
    }
    if (format === "monetary") {
        return formatCurrency(value, currencyId);
    }
    if (format === "integer") {
        return formatFloat(value, { digits: [69, 0] });
    }
    return formatFloat(value, { digits: [69, 2] });
}

/** A small line chart of a KPI over the last periods (Chart.js, no axes). */
export class LoyaltyMlmSparkline extends Component {
    static template = "loyalty_mlm.Sparkline";
    static props = { values: Array, color: { type: String, optional: true } };

    setup() {
        this.canvasRef = useRef("canvas");
        this.chart = null;
        useEffect(
            () => {
                this.renderChart();
            },
            () => [this.props.values]
        );
        onWillUnmount(() => this.chart?.destroy());
    }

    renderChart() {
        this.chart?.destroy();
        const values = this.props.values;
        this.chart = new Chart(this.canvasRef.el, {
            type: "line",
            data: {
                labels: values.map((_v, index) => index),
                datasets: [
                    {
                        data: values,
                        borderColor: this.props.color || COLORS.earned,
                        backgroundColor: "transparent",
                        borderWidth: 1.5,
                        pointRadius: 0,
                        spanGaps: true,
                        tension: 0.3,
                    },
                ],
            },
            options: {
                animation: false,
                responsive: true,
                maintainAspectRatio: false,
                plugins: { legend: { display: false }, tooltip: { enabled: false } },
                scales: { x: { display: false }, y: { display: false } },
                events: [],
            },
        });
    }
}

/** Points earned, spent and expired per month (bars), liability (line). */
export class LoyaltyMlmPointsChart extends Component {
    static template = "loyalty_mlm.PointsChart";
    static props = {
        months: Array,
        currencyId: Number,
        onOpen: Function,
    };

    setup() {
        this.canvasRef = useRef("canvas");
        this.chart = null;
        useEffect(
            () => {
                this.renderChart();
            },
            () => [this.props.months]
        );
        onWillUnmount(() => this.chart?.destroy());
    }

    renderChart() {
        this.chart?.destroy();
        const months = this.props.months;
        const kinds = ["earned", "spent", "expired"];
        const labels = {
            earned: _t("Earned"),
            spent: _t("Spent"),
            expired: _t("Expired"),
        };
        const currencyId = this.props.currencyId;
        this.chart = new Chart(this.canvasRef.el, {
            data: {
                labels: months.map((month) => month.label),
                datasets: [
                    ...kinds.map((kind) => ({
                        type: "bar",
                        label: labels[kind],
                        data: months.map((month) => month[kind]),
                        backgroundColor: COLORS[kind],
                        yAxisID: "y",
                        kind,
                    })),
                    {
                        type: "line",
                        label: _t("Liability"),
                        data: months.map((month) => month.liability),
                        borderColor: COLORS.liability,
                        backgroundColor: COLORS.liability,
                        pointRadius: 3,
                        tension: 0.3,
                        spanGaps: true,
                        yAxisID: "y1",
                    },
                ],
            },
            options: {
                animation: false,
                responsive: true,
                maintainAspectRatio: false,
                interaction: { mode: "index", intersect: false },
                plugins: {
                    legend: { position: "bottom" },
                    tooltip: {
                        callbacks: {
                            label: (item) => {
                                const format =
                                    item.dataset.yAxisID === "y1" ? "monetary" : "integer";
                                return `${item.dataset.label}: ${formatKpi(item.raw, format, currencyId)}`;
                            },
                        },
                    },
                },
                scales: {
                    y: {
                        beginAtZero: true,
                        title: { display: true, text: _t("Points") },
                    },
                    y1: {
                        beginAtZero: true,
                        position: "right",
                        grid: { drawOnChartArea: false },
                        title: { display: true, text: _t("Liability") },
                    },
                },
                onClick: (event) => {
                    const [element] = this.chart.getElementsAtEventForMode(
                        event,
                        "nearest",
                        { intersect: true },
                        true
                    );
                    if (!element) {
                        return;
                    }
                    const dataset = this.chart.data.datasets[element.datasetIndex];
                    this.props.onOpen(months[element.index], dataset.kind || false);
                },
            },
        });
    }
}

/**
 * The programme cockpit: the Members app's first screen. Everything comes
 * from one call (loyalty.mlm.cockpit.get_cockpit_data), which reads the
 * KPI snapshots; every figure opens the records behind it (action_open_kpi).
 */
export class LoyaltyMlmCockpit extends Component {
    static template = "loyalty_mlm.Cockpit";
    static components = { Layout, LoyaltyMlmSparkline, LoyaltyMlmPointsChart };
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.notification = useService("notification");
        this.state = useState({
            data: null,
            kind: "month",
            dateStart: false,
            loading: true,
            computing: false,
        });
        this.kinds = [
            ["week", _t("Week")],
            ["month", _t("Month")],
            ["quarter", _t("Quarter")],
            ["year", _t("Year")],
        ];
        onWillStart(async () => {
            await Promise.all([loadBundle("web.chartjs_lib"), this.load()]);
        });
    }

    async load() {
        this.state.loading = true;
        try {
            this.state.data = await this.orm.call(MODEL, "get_cockpit_data", [], {
                period_kind: this.state.kind,
                date_start: this.state.dateStart,
            });
        } finally {
            this.state.loading = false;
        }
    }

    get data() {
        return this.state.data;
    }

    get currencyId() {
        return this.data.company.currency.id;
    }

    // -- period ----------------------------------------------------------

    async setKind(kind) {
        if (kind === this.state.kind) {
            return;
        }
        // Keep looking at the same moment: the new period contains the
        // last day of the one shown.
        this.state.kind = kind;
        this.state.dateStart = this.data.period.date_end;
        await this.load();
    }

    async goTo(dateStart) {
        if (!dateStart) {
            return;
        }
        this.state.dateStart = dateStart;
        await this.load();
    }

    async computeNow() {
        this.state.computing = true;
        try {
            await this.orm.call(SNAPSHOTS, "action_backfill", []);
            this.notification.add(_t("The KPIs are computed."), { type: "success" });
            await this.load();
        } finally {
            this.state.computing = false;
        }
    }

    // -- formatting ------------------------------------------------------

    format(value, format) {
        return formatKpi(value, format, this.currencyId);
    }

    /** "+2.3 %" relative change, or "+1.5 pp" for a rate. */
    formatChange(kpi, which) {
        const delta = kpi[`change_${which}`];
        if (delta === null || delta === undefined) {
            return "–";
        }
        const sign = delta > 0 ? "+" : delta < 0 ? "−" : "±";
        if (kpi.format === "percent") {
            return `${sign}${formatFloat(Math.abs(delta) * 100, { digits: [69, 1] })} ${_t("pp")}`;
        }
        const relative = kpi[`relative_${which}`];
        if (relative === null || relative === undefined) {
            return `${sign}${this.format(Math.abs(delta), kpi.format)}`;
        }
        return `${sign}${formatFloat(Math.abs(relative) * 100, { digits: [69, 1] })} %`;
    }

    /** Bootstrap text class: green when the change is good, red when bad. */
    changeClass(kpi, which) {
        const delta = kpi[`change_${which}`];
        if (!delta || !kpi.direction) {
            return "text-muted";
        }
        return delta * kpi.direction > 0 ? "text-success" : "text-danger";
    }

    changeIcon(kpi) {
        const delta = kpi.change_previous;
        if (!delta) {
            return "fa-minus";
        }
        return delta > 0 ? "fa-caret-up" : "fa-caret-down";
    }

    formatDay(value) {
        return value ? formatDate(deserializeDate(value)) : "";
    }

    get gridTotals() {
        const totals = this.data.grid.quadrants.map(() => ({ customers: 0, revenue: 0 }));
        for (const row of this.data.grid.rows) {
            row.cells.forEach((cell, index) => {
                totals[index].customers += cell.customers;
                totals[index].revenue += cell.revenue;
            });
        }
        return totals;
    }

    rowTotal(row, field) {
        return row.cells.reduce((total, cell) => total + cell[field], 0);
    }

    get funnelMax() {
        return Math.max(1, ...this.data.funnel.map((stage) => stage.count));
    }

    get funnelTotal() {
        return this.data.funnel.reduce((total, stage) => total + stage.count, 0);
    }

    funnelWidth(stage) {
        return `${Math.max(2, (100 * stage.count) / this.funnelMax)}%`;
    }

    funnelShare(stage) {
        if (!this.funnelTotal) {
            return "–";
        }
        return `${formatFloat((100 * stage.count) / this.funnelTotal, { digits: [69, 1] })} %`;
    }

    get flowMax() {
        let max = 1;
        for (const row of this.data.flow.rows) {
            for (const cell of row.cells) {
                max = Math.max(max, cell.count);
            }
        }
        return max;
    }

    /** Heat-map background of a flow cell, stronger for more moves. */
    flowStyle(cell) {
        if (!cell.count) {
            return "";
        }
        const alpha = 0.08 + (0.5 * cell.count) / this.flowMax;
        return `background-color: rgba(31, 119, 180, ${alpha.toFixed(2)})`;
    }

    get gridMax() {
        let max = 1;
        for (const row of this.data.grid.rows) {
            for (const cell of row.cells) {
                max = Math.max(max, cell.customers);
            }
        }
        return max;
    }

    gridStyle(cell) {
        if (!cell.customers) {
            return "";
        }
        const alpha = 0.08 + (0.45 * cell.customers) / this.gridMax;
        return `background-color: rgba(44, 160, 44, ${alpha.toFixed(2)})`;
    }

    goalBadge(goal) {
        return (
            {
                on_track: "text-bg-success",
                achieved: "text-bg-primary",
                at_risk: "text-bg-warning",
                missed: "text-bg-danger",
            }[goal.status] || "text-bg-secondary"
        );
    }

    goalBar(goal) {
        return (
            {
                on_track: "bg-success",
                achieved: "bg-primary",
                at_risk: "bg-warning",
                missed: "bg-danger",
            }[goal.status] || "bg-secondary"
        );
    }

    goalWidth(goal) {
        return `${Math.min(100, Math.max(0, goal.progress || 0))}%`;
    }

    goalExpected(goal) {
        return `${Math.min(100, Math.max(0, goal.expected || 0))}%`;
    }

    /** An uplift in percentage points, signed. */
    formatPoints(value) {
        const sign = value > 0 ? "+" : "";
        return _t("%(value)s pp", { value: `${sign}${value.toFixed(1)}` });
    }

    verdictBadge(result) {
        return (
            {
                working: "text-bg-success",
                harmful: "text-bg-danger",
            }[result.verdict] || "text-bg-secondary"
        );
    }

    openResult(result) {
        return this.action.doAction({
            type: "ir.actions.act_window",
            res_model: result.res_model,
            res_id: result.res_id,
            views: [[false, "form"]],
        });
    }

    get pointsHaveData() {
        return this.data.points.some((month) => month.has_data);
    }

    // -- drill-down ------------------------------------------------------

    async open(code, filters = {}) {
        const action = await this.orm.call(MODEL, "action_open_kpi", [
            code,
            this.data.period.kind,
            this.data.period.date_start,
            filters,
        ]);
        return this.action.doAction(action);
    }

    openPointsMonth(month, kind) {
        const filters = { month: month.date_start };
        if (kind) {
            filters.kind = kind;
        }
        return this.open("points_month", filters);
    }
}

registry.category("actions").add("loyalty_mlm.dashboard", LoyaltyMlmCockpit);
