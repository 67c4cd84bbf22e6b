"""DB-free tests of loyalty_mlm.tools.domains (ORed score filters merged)."""

from loyalty_mlm.tools.domains import id_range_domain, merge_or_leaves, normalize

HEAVY = ("mlm_usage_segment", "=", "heavy")
LOW = ("mlm_usage_segment", "=", "low")
FRIEND = ("mlm_quadrant", "=", "true_friend")
STAGE = ("mlm_stage_id", "in", [3])
NAME = ("name", "ilike", "a")


def mergeable(leaf):
    return leaf[0].startswith("mlm_") and leaf[0] != "mlm_stage_id"


def merge(leaves):
    return ("id", "in", tuple(leaf[2] for leaf in leaves))


def evaluate(domain, truth):
    """The domain's value when each leaf is truth[leaf] (merged leaves: any
    of their values)."""

    def value(leaf):
        if leaf[0] == "id":
            return any(truth[next(x for x in truth if x[2] == v)] for v in leaf[2])
        return truth[leaf]

    def walk(index):
        token = domain[index]
        if token == "!":
            result, index = walk(index + 1)
            return not result, index
        if token in ("&", "|"):
            left, index = walk(index + 1)
            right, index = walk(index)
            return (left and right) if token == "&" else (left or right), index
        return value(token), index + 1

    result, end = walk(0)
    assert end == len(domain)
    return result


def test_normalize_makes_the_ands_explicit():
    assert normalize([HEAVY, LOW]) == ["&", HEAVY, LOW]
    assert normalize(["|", HEAVY, LOW, STAGE]) == ["&", "|", HEAVY, LOW, STAGE]


def test_an_or_of_score_filters_becomes_one_leaf():
    assert merge_or_leaves(["|", HEAVY, LOW], mergeable, merge) == [
        ("id", "in", ("heavy", "low"))
    ]
    # As the web client combines two filters of a group with another group.
    domain = ["&", "|", HEAVY, LOW, "|", FRIEND, STAGE]
    assert merge_or_leaves(domain, mergeable, merge) == [
        "&",
        ("id", "in", ("heavy", "low")),
        "|",
        FRIEND,
        STAGE,
    ]
    domain = [STAGE, "|", "|", HEAVY, LOW, FRIEND]
    assert merge_or_leaves(domain, mergeable, merge) == [
        "&",
        STAGE,
        ("id", "in", ("heavy", "low", "true_friend")),
    ]


def test_mixed_ors_keep_their_other_terms():
    domain = ["|", "|", HEAVY, NAME, FRIEND]
    assert merge_or_leaves(domain, mergeable, merge) == [
        "|",
        ("id", "in", ("heavy", "true_friend")),
        NAME,
    ]


def test_nothing_to_merge_is_left_as_it_is():
    for domain in ([], [HEAVY], [HEAVY, LOW], ["|", HEAVY, NAME], ["!", HEAVY]):
        assert merge_or_leaves(domain, mergeable, merge) == list(domain)


def test_the_rewrite_keeps_the_meaning():
    leaves = [HEAVY, LOW, FRIEND, NAME]
    domains = [
        ["|", HEAVY, LOW],
        ["!", "|", HEAVY, LOW],
        ["&", "|", HEAVY, LOW, "|", FRIEND, NAME],
        ["|", "&", HEAVY, NAME, "|", LOW, FRIEND],
        ["|", "|", HEAVY, NAME, "!", "|", LOW, FRIEND],
        [NAME, "|", HEAVY, "|", LOW, FRIEND],
    ]
    for domain in domains:
        merged = merge_or_leaves(domain, mergeable, merge)
        for bits in range(2 ** len(leaves)):
            truth = {leaf: bool(bits >> i & 1) for i, leaf in enumerate(leaves)}
            assert evaluate(merged, truth) == evaluate(normalize(domain), truth), (
                domain,
                merged,
                truth,
            )


def test_an_id_range_becomes_its_bounds():
    assert id_range_domain("id", (10, 20)) == [("id", ">=", 10), ("id", "<", 20)]
    assert id_range_domain("partner_id", [10, None]) == [("partner_id", ">=", 10)]


def test_a_malformed_id_range_gives_no_condition():
    # The range also comes from a context, which any client may fill.
    for value in (None, 5, "1,2", (1,), (1, 2, 3), ("1", 2), (1, "2"), (True, 2)):
        assert id_range_domain("id", value) == []
