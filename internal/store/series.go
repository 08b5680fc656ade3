package store

import (
	"strings"
	"sync"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Samples are stored by series (schema version 8): a series row gives each
// box/component/metric an id once, and each sample row is (series_id, ts,
// value), so the strings are not repeated in every sample.

// seriesKey names one series.
type seriesKey struct{ box, component, metric string }

// seriesCacheMax bounds the series ids a store keeps in memory: about
// 100 MB at worst with long names, and more series than a fleet of 1,000
// arrays has.
const seriesCacheMax = 1 << 20

// seriesCache maps series to their ids. Ids never change and series are
// never deleted, so a cached id stays right; when full the cache is emptied
// and fills again from the database.
type seriesCache struct {
	mu  sync.Mutex
	ids map[seriesKey]int64
}

func newSeriesCache() *seriesCache { return &seriesCache{ids: map[seriesKey]int64{}} }

// lookup fills ids[i] with the id of keys[i] when cached and returns the
// indexes of the keys that are not.
func (c *seriesCache) lookup(keys []seriesKey, ids []int64) (missing []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		id, ok := c.ids[k]
		if !ok {
			missing = append(missing, i)
			continue
		}
		ids[i] = id
	}
	return missing
}

// add caches the ids of keys[i] for i in which.
func (c *seriesCache) add(keys []seriesKey, ids []int64, which []int) {
	if len(which) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids)+len(which) > seriesCacheMax {
		clear(c.ids)
	}
	for _, i := range which {
		k := keys[i]
		// Cloned: the names may point into a parser's large buffers.
		c.ids[seriesKey{strings.Clone(k.box), strings.Clone(k.component), strings.Clone(k.metric)}] = ids[i]
	}
}

// seriesOf returns the distinct series of rows (sorted by key, as
// prepareSamples returns them) and, for each row, the index of its series.
func seriesOf(rows []telemetry.Sample) (keys []seriesKey, of []int) {
	of = make([]int, len(rows))
	for i, r := range rows {
		if n := len(keys); n == 0 || keys[n-1] != (seriesKey{r.Box, r.Component, r.Metric}) {
			keys = append(keys, seriesKey{r.Box, r.Component, r.Metric})
		}
		of[i] = len(keys) - 1
	}
	return keys, of
}
