package email

import (
	"bytes"
	"fmt"
	"github.com/dustin/go-humanize"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
)

// File names of the parts that carry the evidence. The HTML part refers to
// the chart as cid:evidence.png.
const (
	ChartFile = "evidence.png"
	CSVFile   = "evidence.csv"
)

// Limits that keep an email small whatever the finding holds.
const (
	maxSubject = 200
	maxField   = 200
	maxProblem = 4000
	maxNote    = 2000
	maxStep    = 1000
	maxSteps   = 30
	maxNumbers = 40
)

// Rendered is a message ready to send: subject, the two body parts, the
// evidence as CSV (attached) and as a PNG chart (inline). CSV and PNG are nil
// when the finding has no series to show.
type Rendered struct {
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
	CSV     []byte `json:"csv,omitempty"`
	PNG     []byte `json:"png,omitempty"`
}

// Render turns m into the subject, text and HTML bodies and the evidence
// attachments. It fails, and nothing should be sent, when m does not pass
// Validate (unknown kind, missing or malformed addresses).
func Render(m Message) (Rendered, error) {
	if err := m.Validate(); err != nil {
		return Rendered{}, fmt.Errorf("render email: %w", err)
	}
	points := Downsample(m.Finding.Evidence.Series, MaxPoints)
	csvData, err := EvidenceCSV(points)
	if err != nil {
		return Rendered{}, fmt.Errorf("render email: %w", err)
	}
	pngData, err := EvidenceChart(ChartFor(m.Finding.Evidence, points))
	if err != nil {
		return Rendered{}, fmt.Errorf("render email: %w", err)
	}
	v := newView(m, points, pngData != nil)
	var html bytes.Buffer
	if err := htmlTemplate.Execute(&html, v); err != nil {
		return Rendered{}, fmt.Errorf("render html: %w", err)
	}
	return Rendered{
		Subject: v.Subject,
		Text:    renderText(v),
		HTML:    html.String(),
		CSV:     csvData,
		PNG:     pngData,
	}, nil
}

// Subject returns the subject line of m, such as
// "Reminder: [sanwatch][CRITICAL] box-0042 pool/ssd_r6: full in 5 days".
func Subject(m Message) string {
	f := m.Finding
	s := subjectPrefix(m.Kind) + "[sanwatch][" + severityLabel(f.Severity) + "] " +
		clean(f.Box, maxField) + " " + clean(f.Component, maxField) + ": " + clean(f.Title, maxSubject)
	return truncate(s, maxSubject)
}

func subjectPrefix(k Kind) string {
	switch k {
	case KindReminder:
		return "Reminder: "
	case KindUpdate:
		return "Update: "
	case KindEscalation:
		return "ESCALATION: "
	case KindResolved:
		return "Resolved: "
	case KindUndeliverable:
		return "Undeliverable: "
	}
	return ""
}

func severityLabel(s finding.Severity) string {
	if s == "" {
		return "UNKNOWN"
	}
	return strings.ToUpper(idAtom(string(s), "unknown"))
}

// view is what both bodies show, already cleaned and truncated.
type view struct {
	Subject      string
	Heading      string
	Severity     string
	Color        string
	Intro        string
	Note         string
	Problem      string
	Box          string
	Model        string
	Firmware     string
	Site         string
	Component    string
	Rule         string
	Fingerprint  string
	Metric       string
	Window       string
	Numbers      []numberView
	MoreNumbers  int
	Series       string
	HasChart     bool
	HasCSV       bool
	Steps        []string
	MoreSteps    int
	TimeToImpact string
	DetectedAt   string
	ShowFix      bool
	AckCLI       string
	AckTemporal  string
	Footer       string
}

type numberView struct{ Name, Value string }

func newView(m Message, points []finding.Point, hasChart bool) view {
	f := m.Finding
	fp := f.Fingerprint()
	v := view{
		Subject:     Subject(m),
		Heading:     "[" + severityLabel(f.Severity) + "] " + clean(f.Box, maxField) + " " + clean(f.Component, maxField) + ": " + clean(f.Title, maxSubject),
		Severity:    severityLabel(f.Severity),
		Color:       severityColor(f.Severity),
		Intro:       intro(m),
		Note:        truncate(strings.TrimSpace(m.Note), maxNote),
		Problem:     truncate(strings.TrimSpace(f.Problem), maxProblem),
		Box:         clean(f.Box, maxField),
		Model:       clean(m.Box.Model, maxField),
		Firmware:    clean(m.Box.Firmware, maxField),
		Site:        clean(m.Box.Site, maxField),
		Component:   clean(f.Component, maxField),
		Rule:        clean(f.Rule, maxField),
		Fingerprint: clean(fp, 3*maxField),
		Metric:      clean(f.Evidence.Metric, maxField),
		HasChart:    hasChart,
		HasCSV:      len(points) > 0,
		ShowFix:     m.Kind != KindResolved,
		AckCLI:      "starter ack " + shellQuote(fp),
		Footer:      fmt.Sprintf("sanwatch %s, message %d of thread %s", m.Kind, m.Step, fp),
	}
	if m.WorkflowID != "" {
		v.AckTemporal = "temporal workflow signal --workflow-id " + shellQuote(m.WorkflowID) + " --name " + AckSignal +
			` --input '{"by": "your name"}'`
	}
	if w := f.Evidence; !w.WindowStart.IsZero() || !w.WindowEnd.IsZero() {
		v.Window = formatTime(w.WindowStart) + " to " + formatTime(w.WindowEnd)
	}
	for i, n := range f.Evidence.Numbers {
		if i == maxNumbers {
			v.MoreNumbers = len(f.Evidence.Numbers) - maxNumbers
			break
		}
		v.Numbers = append(v.Numbers, numberView{Name: clean(n.Name, 80), Value: formatValue(n.Value, clean(n.Unit, 40))})
	}
	for i, s := range f.Remediation {
		if i == maxSteps {
			v.MoreSteps = len(f.Remediation) - maxSteps
			break
		}
		v.Steps = append(v.Steps, truncate(strings.TrimSpace(s), maxStep))
	}
	if len(points) > 0 {
		v.Series = seriesSummary(f.Evidence.Series, points, metricUnit(f.Evidence.Metric))
	}
	if f.TimeToImpact > 0 {
		v.TimeToImpact = formatDuration(f.TimeToImpact)
		if !f.DetectedAt.IsZero() {
			v.TimeToImpact += " (around " + formatTime(f.DetectedAt.Add(f.TimeToImpact)) + ")"
		}
	}
	if !f.DetectedAt.IsZero() {
		v.DetectedAt = formatTime(f.DetectedAt)
	}
	return v
}

func intro(m Message) string {
	box := clean(m.Finding.Box, maxField)
	switch m.Kind {
	case KindReminder:
		s := "Reminder: this problem on " + box + " is still open and has not been acknowledged."
		if fs := m.Finding.FirstSeen; !fs.IsZero() {
			s += " It was first reported at " + formatTime(fs) + "."
		}
		return s
	case KindUpdate:
		return "New evidence for the problem on " + box + " reported earlier in this thread."
	case KindEscalation:
		s := "This problem on " + box + " has not been acknowledged by the box owners"
		if len(m.Box.Owners) > 0 {
			s += " (" + clean(strings.Join(m.Box.Owners, ", "), 3*maxField) + ")"
		}
		return s + " and is escalated to you."
	case KindResolved:
		return "Fresh data shows the problem on " + box + " is gone. No further action is needed; this thread is closed."
	case KindUndeliverable:
		return "Mail about this problem on " + box + " could not be delivered to the box owners."
	}
	return "sanwatch found a problem on " + box + " that needs action."
}

func severityColor(s finding.Severity) string {
	switch s {
	case finding.Critical:
		return "#b00020"
	case finding.Warning:
		return "#b36b00"
	}
	return "#205080"
}

// metricUnit returns the unit a catalogue metric carries in its name.
func metricUnit(metric string) string {
	for _, u := range []struct{ suffix, unit string }{
		{"_bytes", "bytes"}, {"_ms", "ms"}, {"_pct", "%"}, {"_c", "C"}, {"_s", "s"},
	} {
		if strings.HasSuffix(metric, u.suffix) {
			return u.unit
		}
	}
	return ""
}

func seriesSummary(all, shown []finding.Point, unit string) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range shown {
		lo = math.Min(lo, p.Value)
		hi = math.Max(hi, p.Value)
	}
	last := shown[len(shown)-1]
	s := fmt.Sprintf("%d points", len(all))
	if len(shown) < len(all) {
		s += fmt.Sprintf(" (%d shown, evenly sampled)", len(shown))
	}
	return s + fmt.Sprintf(", min %s, max %s, last %s at %s; attached as %s",
		formatValue(lo, unit), formatValue(hi, unit), formatValue(last.Value, unit), formatTime(last.Time), CSVFile)
}

func renderText(v view) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("%s", v.Heading)
	line("")
	line("%s", v.Intro)
	if v.Note != "" {
		line("")
		line("Note: %s", v.Note)
	}
	if v.Problem != "" {
		line("")
		line("WHAT IS WRONG")
		line("%s", v.Problem)
	}
	line("")
	line("WHERE")
	line("  Box:         %s", v.Box)
	if v.Model != "" || v.Firmware != "" || v.Site != "" {
		line("  Model:       %s, firmware %s, site %s", v.Model, v.Firmware, v.Site)
	}
	line("  Component:   %s", v.Component)
	line("  Rule:        %s", v.Rule)
	line("  Fingerprint: %s", v.Fingerprint)
	if v.Metric != "" || len(v.Numbers) > 0 || v.Series != "" {
		line("")
		header := "EVIDENCE"
		if v.Metric != "" {
			header += " (" + v.Metric
			if v.Window != "" {
				header += ", " + v.Window
			}
			header += ")"
		}
		line("%s", header)
		for _, n := range v.Numbers {
			line("  %s: %s", n.Name, n.Value)
		}
		if v.MoreNumbers > 0 {
			line("  (%d more figures left out)", v.MoreNumbers)
		}
		if v.Series != "" {
			line("  Series: %s", v.Series)
		}
	}
	if v.TimeToImpact != "" {
		line("")
		line("Time to impact: %s", v.TimeToImpact)
	}
	if v.DetectedAt != "" {
		line("Detected at:    %s", v.DetectedAt)
	}
	if v.ShowFix {
		if len(v.Steps) > 0 {
			line("")
			line("WHAT TO DO")
			for i, s := range v.Steps {
				line("  %d. %s", i+1, s)
			}
			if v.MoreSteps > 0 {
				line("  (%d more steps left out)", v.MoreSteps)
			}
		}
		line("")
		line("HOW TO ACKNOWLEDGE")
		line("  %s", v.AckCLI)
		if v.AckTemporal != "" {
			line("  or: %s", v.AckTemporal)
		}
	}
	line("")
	line("-- ")
	line("%s", v.Footer)
	return b.String()
}

var htmlTemplate = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Subject}}</title></head>
<body style="font-family: sans-serif; font-size: 14px; color: #222">
<h2 style="color: {{.Color}}">{{.Heading}}</h2>
<p>{{.Intro}}</p>
{{- if .Note}}
<p><b>Note:</b> {{.Note}}</p>
{{- end}}
{{- if .Problem}}
<h3>What is wrong</h3>
<p style="white-space: pre-wrap">{{.Problem}}</p>
{{- end}}
<h3>Where</h3>
<table cellpadding="3" style="border-collapse: collapse">
<tr><th align="left">Box</th><td>{{.Box}}</td></tr>
{{- if or .Model .Firmware .Site}}
<tr><th align="left">Model</th><td>{{.Model}}, firmware {{.Firmware}}, site {{.Site}}</td></tr>
{{- end}}
<tr><th align="left">Component</th><td>{{.Component}}</td></tr>
<tr><th align="left">Rule</th><td>{{.Rule}}</td></tr>
<tr><th align="left">Fingerprint</th><td><code>{{.Fingerprint}}</code></td></tr>
</table>
{{- if or .Metric .Numbers .Series}}
<h3>Evidence{{if .Metric}} ({{.Metric}}{{if .Window}}, {{.Window}}{{end}}){{end}}</h3>
{{- if .Numbers}}
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">Figure</th><th align="right">Value</th></tr>
{{- range .Numbers}}
<tr><td>{{.Name}}</td><td align="right">{{.Value}}</td></tr>
{{- end}}
</table>
{{- if .MoreNumbers}}
<p>({{.MoreNumbers}} more figures left out)</p>
{{- end}}
{{- end}}
{{- if .HasChart}}
<p><img src="cid:evidence.png" alt="evidence chart" width="640" height="240"></p>
{{- end}}
{{- if .Series}}
<p>Series: {{.Series}}</p>
{{- end}}
{{- end}}
{{- if .TimeToImpact}}
<p><b>Time to impact:</b> {{.TimeToImpact}}</p>
{{- end}}
{{- if .DetectedAt}}
<p><b>Detected at:</b> {{.DetectedAt}}</p>
{{- end}}
{{- if .ShowFix}}
{{- if .Steps}}
<h3>What to do</h3>
<ol>
{{- range .Steps}}
<li>{{.}}</li>
{{- end}}
</ol>
{{- if .MoreSteps}}
<p>({{.MoreSteps}} more steps left out)</p>
{{- end}}
{{- end}}
<h3>How to acknowledge</h3>
<pre>{{.AckCLI}}{{if .AckTemporal}}
{{.AckTemporal}}{{end}}</pre>
{{- end}}
<hr>
<p style="color: #777; font-size: 12px">{{.Footer}}</p>
</body></html>
`))

// clean makes s a single line (control characters become spaces) of at most n runes.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if hasControl(string(r)) {
			return ' '
		}
		return r
	}, s)
	return truncate(strings.Join(strings.Fields(s), " "), n)
}

// truncate cuts s to at most n runes, ending in an ellipsis when cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n-1 {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339)
}

// formatValue prints an evidence figure in the units a person reads: bytes
// as KiB ... PiB, unix times as dates, minutes as hours past two hours. The
// CSV attachment keeps the exact values.
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return formatNumber(v)
	}
	sign := ""
	if v < 0 {
		sign = "-"
	}
	switch unit {
	case "bytes":
		return sign + humanize.IBytes(uint64(math.Abs(v)))
	case "bytes/day":
		return sign + humanize.IBytes(uint64(math.Abs(v))) + "/day"
	case "unix_s":
		return time.Unix(int64(v), 0).UTC().Format("2006-01-02 15:04 UTC")
	case "min":
		if math.Abs(v) >= 120 {
			return strconv.FormatFloat(v/60, 'f', 1, 64) + " hours"
		}
		return formatNumber(math.Round(v*10)/10) + " min"
	case "":
		return formatNumber(v)
	case "%":
		return formatNumber(v) + "%"
	}
	return formatNumber(v) + " " + unit
}

// formatNumber prints integers in full and other values with up to 4
// significant decimals, without exponent for ordinary magnitudes.
func formatNumber(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 0.001 && math.Abs(v) < 1e15:
		s := strconv.FormatFloat(v, 'f', 4, 64)
		s = strings.TrimRight(s, "0")
		return strings.TrimSuffix(s, ".")
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// formatDuration prints d in days and hours, hours and minutes, or minutes.
func formatDuration(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	minutes := int(d % time.Hour / time.Minute)
	unit := func(n int, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return strconv.Itoa(n) + " " + name + "s"
	}
	switch {
	case days > 0 && hours > 0:
		return unit(days, "day") + " " + unit(hours, "hour")
	case days > 0:
		return unit(days, "day")
	case hours > 0 && minutes > 0:
		return unit(hours, "hour") + " " + unit(minutes, "minute")
	case hours > 0:
		return unit(hours, "hour")
	case minutes > 0:
		return unit(minutes, "minute")
	}
	return "less than a minute"
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_-.:@,+=", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
