package clickhouse

import "strings"

// inlineCTEs rewrites WITH name AS (subquery) … SELECT … FROM name into
// SELECT … FROM (subquery) AS name, which every ClickHouse understands
// (table CTEs came in 20.x; 18.16 has only WITH expr AS name, which is left
// alone). A query without table CTEs is returned unchanged.
func inlineCTEs(query string) string {
	toks := tokenize(query)
	if len(toks) == 0 || !toks[0].word("with") {
		return query
	}
	ctes := map[string]string{}
	i := 1
	for {
		// name AS ( … )
		if i+2 >= len(toks) || (toks[i].kind != tokWord && toks[i].kind != tokQuoted) || !toks[i+1].word("as") || !toks[i+2].is("(") {
			return query
		}
		end := matchParen(toks, i+2)
		if end < 0 {
			return query
		}
		// A CTE may use the ones before it.
		ctes[toks[i].text] = substitute(query[toks[i+2].pos:toks[end].end], ctes)
		i = end + 1
		if i < len(toks) && toks[i].is(",") {
			i++
			continue
		}
		break
	}
	if i >= len(toks) {
		return query
	}
	return substitute(query[toks[i].pos:], ctes)
}

// matchParen returns the index of the ')' closing the '(' at open, or -1.
func matchParen(toks []token, open int) int {
	depth := 0
	for j := open; j < len(toks); j++ {
		switch {
		case toks[j].is("("):
			depth++
		case toks[j].is(")"):
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// substitute replaces table references to the named CTEs (a name right after
// FROM or JOIN) with their parenthesized bodies.
func substitute(q string, ctes map[string]string) string {
	if len(ctes) == 0 {
		return q
	}
	toks := tokenize(q)
	var b strings.Builder
	last := 0
	for i := 1; i < len(toks); i++ {
		t := toks[i]
		body, ok := ctes[t.text]
		if !ok || (t.kind != tokWord && t.kind != tokQuoted) || !(toks[i-1].word("from") || toks[i-1].word("join")) {
			continue
		}
		if i+1 < len(toks) && (toks[i+1].is(".") || toks[i+1].is("(")) {
			continue
		}
		b.WriteString(q[last:t.pos])
		b.WriteString(body)
		if i+1 >= len(toks) || !toks[i+1].word("as") {
			b.WriteString(" AS " + t.text)
		}
		last = t.end
	}
	b.WriteString(q[last:])
	return b.String()
}
