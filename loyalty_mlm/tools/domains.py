"""Rewrites of Odoo domains (prefix notation), without the ORM.

merge_or_leaves exists for the score filters of res.partner: each becomes
`id IN (SELECT partner_id FROM the score table ...)`. PostgreSQL turns such
a condition into a join when it is ANDed with the rest, but under an OR it
checks it row by row, and a subquery whose rows it expects not to fit in
work_mem (about 260,000 ids with the defaults) is not hashed: it is read
again for every contact. "Heavy users" OR "Low users" at 1,000,000
customers then ran for hours. One subquery for the whole OR is ANDed again.
"""

ARITY = {"!": 1, "&": 2, "|": 2}


def is_leaf(token):
    return isinstance(token, list | tuple) and len(token) == 3


def normalize(domain):
    """`domain` with its implicit ANDs made explicit (as Odoo's
    expression.normalize_domain)."""
    result = []
    expected = 1
    for token in domain:
        if expected == 0:
            result[0:0] = ["&"]
            expected = 1
        expected += ARITY.get(token, 0) - 1 if not is_leaf(token) else -1
        result.append(token)
    return result


def _parse(tokens, index):
    """(node, next index): a node is a leaf or (operator, [children]), an
    n-ary AND or OR flattened."""
    token = tokens[index]
    if is_leaf(token) or token not in ARITY:
        return token, index + 1
    children = []
    index += 1
    for _ in range(ARITY[token]):
        child, index = _parse(tokens, index)
        if token != "!" and isinstance(child, tuple) and child[0] == token:
            children.extend(child[1])
        else:
            children.append(child)
    return (token, children), index


def _rewrite(node, mergeable, merge, merged):
    if not (isinstance(node, tuple) and node[0] in ARITY):
        return node
    operator, children = node
    children = [_rewrite(child, mergeable, merge, merged) for child in children]
    if operator == "|":
        leaves = [child for child in children if is_leaf(child) and mergeable(child)]
        if len(leaves) > 1:
            merged.append(leaves)
            rest = [child for child in children if not any(child is x for x in leaves)]
            children = [merge(leaves), *rest]
            if len(children) == 1:
                return children[0]
    return operator, children


def _emit(node, out):
    if not (isinstance(node, tuple) and node[0] in ARITY):
        out.append(node)
        return out
    operator, children = node
    out.extend([operator] * max(len(children) - 1, 1 if operator == "!" else 0))
    for child in children:
        _emit(child, out)
    return out


def merge_or_leaves(domain, mergeable, merge):
    """`domain` where the leaves that `mergeable(leaf)` accepts and that are
    ORed together (two or more in one OR) are replaced by the one leaf
    `merge(leaves)` returns; the rest is kept as it is. `domain` itself when
    it has nothing to merge."""
    domain = list(domain)
    if sum(1 for token in domain if is_leaf(token) and mergeable(token)) < 2:
        return domain
    tokens = normalize(domain)
    node, end = _parse(tokens, 0)
    if end != len(tokens):
        return domain  # not a well-formed domain: left to Odoo to refuse
    merged = []
    node = _rewrite(node, mergeable, merge, merged)
    return _emit(node, []) if merged else domain


def id_range_domain(fname, id_range):
    """Domain of the ids `fname` from `id_range`'s start up to its end,
    excluded ((start, end); an end of None: no upper bound). Anything else
    than two integers (the end may be None) gives no condition: the range
    also comes from a context, which any client may fill."""
    if not isinstance(id_range, list | tuple) or len(id_range) != 2:
        return []
    start, end = id_range
    if not _is_int(start) or not (end is None or _is_int(end)):
        return []
    return [(fname, ">=", start)] + ([(fname, "<", end)] if end is not None else [])


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
