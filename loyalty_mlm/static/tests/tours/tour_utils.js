/** Steps shared by the add-on's tours (and the web shop bridge's). */

/**
 * Ask the test for a screenshot named `name` once `trigger` is there, and
 * wait until it is taken (see tests/test_demo_tours.py, run_screenshot_tour).
 */
export function screenshot(name, trigger) {
    return [
        {
            content: `Screenshot ${name}`,
            trigger,
            run: () => console.log(`loyalty_mlm:screenshot:${name}`),
        },
        {
            content: `Wait for the screenshot ${name}`,
            trigger: `body.o_mlm_shot_${name}`,
        },
    ];
}
