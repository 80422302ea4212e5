package main

import (
	"image/color"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotDelays draws the distribution of each case's voice delays (the
// fraction of frames delayed more than a given time, on a log scale, so
// that the tail — what a listener hears as a stutter — shows).
func plotDelays(path string, names []string, lags [][]time.Duration) error {
	p := plot.New()
	p.Title.Text = "Voice delay with 1.5 Mbit/s of video on a 2.5 Mbit/s link"
	p.X.Label.Text = "delay (ms)"
	p.Y.Label.Text = "fraction of voice frames delayed more"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: 1}
	p.Legend.Top = true
	p.X.Min = 0
	p.X.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		step := 10.0
		for (max-min)/step > 8 {
			step *= 2.5
		}
		var ticks []plot.Tick
		for v := 0.0; v <= max; v += step {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
		return ticks
	})
	colors := []color.Color{color.RGBA{120, 120, 120, 255}, color.RGBA{200, 40, 40, 255}, color.RGBA{230, 150, 20, 255}, color.RGBA{30, 100, 200, 255}}
	for i, l := range lags {
		if len(l) == 0 {
			continue
		}
		pts := make(plotter.XYs, 0, len(l))
		for j, d := range l {
			above := 1 - float64(j+1)/float64(len(l))
			if above <= 0 {
				above = 0.5 / float64(len(l)) // the largest sample, shown at half a frame's weight
			}
			pts = append(pts, plotter.XY{X: float64(d) / float64(time.Millisecond), Y: above})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = colors[i%len(colors)]
		line.Width = vg.Points(2)
		if i == 0 {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(line)
		p.Legend.Add(names[i], line)
	}
	p.Legend.XOffs = -vg.Points(10)
	p.Legend.YOffs = -vg.Points(60) // below the lines' start at the top left
	p.Legend.ThumbnailWidth = vg.Points(24)
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
