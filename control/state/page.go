package state

import (
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Page is a window of a list: Offset matching rows skipped, at most Limit
// returned (Limit < 0: no limit).
type Page struct{ Offset, Limit int }

// PageOf turns 1-based page numbers into a window.
func PageOf(page, perPage int) Page { return Page{Offset: (page - 1) * perPage, Limit: perPage} }

// match tells a walk whether a row belongs to the list and whether the
// walk has left the list's range (nothing after it can match).
type match[T any] func(T) (keep, stop bool)

// scan walks it, skips p.Offset kept rows and collects up to p.Limit. It
// stops as soon as the page is full unless countAll is set, in which case
// it walks to the end of the range and also returns how many rows matched
// (the total of a list no counter keeps).
func scan[T any](it memdb.ResultIterator, p Page, countAll bool, m match[T]) ([]T, int) {
	var out []T
	n := 0
	for v := it.Next(); v != nil; v = it.Next() {
		row := v.(T)
		keep, stop := true, false
		if m != nil {
			keep, stop = m(row)
		}
		if stop {
			break
		}
		if !keep {
			continue
		}
		if n >= p.Offset && (p.Limit < 0 || len(out) < p.Limit) {
			out = append(out, row)
		}
		n++
		if !countAll && p.Limit >= 0 && len(out) >= p.Limit {
			break
		}
	}
	return out, n
}

// expired returns the rows of a table's "expires" index that expired at
// now, oldest first: the walk stops at the first row still valid, so only
// the expired ones are read. The caller deletes them (deletes must not run
// under the walk).
func expired[T any](s *Store, table string, now time.Time, expiresAt func(T) time.Time) []T {
	rows, _ := scan(s.iter(table, "expires", false), Page{Limit: -1}, false, func(row T) (bool, bool) { return true, now.Before(expiresAt(row)) })
	return rows
}

// window returns a page of the rows under an index prefix, newest (last
// key) first, when a counter gives their exact number: a page past the end
// costs nothing, and a page nearer the oldest end is walked from there, so
// no page walks more than half the list.
func window[T any](s *Store, table, index string, total int, p Page, prefix ...any) []T {
	return windowBetween[T](total, p, func() memdb.ResultIterator { return s.iter(table, index, true, prefix...) },
		func() memdb.ResultIterator { return s.iter(table, index, false, prefix...) })
}

// windowBetween is window for a list of total rows that newest walks from
// its newest row backwards and oldest from its oldest row forwards (a
// range of an index: both start with a seek).
func windowBetween[T any](total int, p Page, newest, oldest func() memdb.ResultIterator) []T {
	if p.Offset >= total || p.Limit == 0 {
		return nil
	}
	n := total - p.Offset
	if p.Limit >= 0 && p.Limit < n {
		n = p.Limit
	}
	older := total - p.Offset - n // rows after the page in newest-first order
	if older >= p.Offset {
		out, _ := scan[T](newest(), Page{Offset: p.Offset, Limit: n}, false, nil)
		return out
	}
	out, _ := scan[T](oldest(), Page{Offset: older, Limit: n}, false, nil)
	slices.Reverse(out)
	return out
}

// listFilter is one list a filter selects: the index whose args prefix
// holds exactly its rows, and the counter of them; or, for a list no one
// index prefix holds (an audit action prefix, several actions' walks
// merged), its walk in either order and its size.
type listFilter struct {
	index   string
	args    []any
	counter string

	walk  func(newestFirst bool) memdb.ResultIterator
	total int
}

func (l listFilter) iter(s *Store, table string, newestFirst bool) memdb.ResultIterator {
	if l.walk != nil {
		return l.walk(newestFirst)
	}
	return s.iter(table, l.index, newestFirst, l.args...)
}

func (l listFilter) size(s *Store) int {
	if l.walk != nil {
		return l.total
	}
	return s.counter(l.counter)
}

// filteredPage pages the rows every given list holds, newest first. One
// list (the usual case) is a window of it, with its size as the total;
// several are walked along the first, which the caller puts narrowest,
// counting the rows that match all of them.
func filteredPage[T any](s *Store, table string, lists []listFilter, p Page, matches func(T) bool) ([]T, int) {
	l := lists[0]
	if len(lists) == 1 {
		total := l.size(s)
		return windowBetween[T](total, p, func() memdb.ResultIterator { return l.iter(s, table, true) },
			func() memdb.ResultIterator { return l.iter(s, table, false) }), total
	}
	return scan(l.iter(s, table, true), p, true, func(row T) (bool, bool) { return matches(row), false })
}
