package dag

// nodeHeap is a binary min-heap of node indexes ordered by less.
type nodeHeap struct {
	items []int
	less  func(a, b int) bool
}

func (h *nodeHeap) len() int { return len(h.items) }

func (h *nodeHeap) top() int { return h.items[0] }

func (h *nodeHeap) push(i int) {
	h.items = append(h.items, i)
	c := len(h.items) - 1
	for c > 0 {
		p := (c - 1) / 2
		if !h.less(h.items[c], h.items[p]) {
			break
		}
		h.items[c], h.items[p] = h.items[p], h.items[c]
		c = p
	}
}

func (h *nodeHeap) pop() int {
	out := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	p := 0
	for {
		c := 2*p + 1
		if c >= last {
			break
		}
		if r := c + 1; r < last && h.less(h.items[r], h.items[c]) {
			c = r
		}
		if !h.less(h.items[c], h.items[p]) {
			break
		}
		h.items[c], h.items[p] = h.items[p], h.items[c]
		p = c
	}
	return out
}
