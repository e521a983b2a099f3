// Command dashshot logs in to a running jobcast dashboard with headless
// Chromium and writes a screenshot of it: it makes docs/img/dashboard.png
// from `jobcast demo`.
//
//	go run ./dashboard/cmd/dashshot -url http://127.0.0.1:8080 -token "$(cat jobcast-demo-data/admin-token)" -out docs/img/dashboard.png
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "the server's base URL")
	token := flag.String("token", "", "the admin token (default: $JOBCAST_ADMIN_TOKEN)")
	out := flag.String("out", "dashboard.png", "the PNG to write")
	query := flag.String("query", "range=1h", "the dashboard's query: range and filters")
	inspect := flag.Bool("inspect", false, "open the first live job in the job inspector (shown with -full)")
	width := flag.Int("width", 1440, "viewport width")
	height := flag.Int("height", 900, "viewport height")
	full := flag.Bool("full", false, "capture the whole page, not just the viewport")
	chromium := flag.String("chromium", envOr("JOBCAST_CHROMIUM", "/usr/bin/chromium"), "the browser binary")
	flag.Parse()
	if *token == "" {
		*token = os.Getenv("JOBCAST_ADMIN_TOKEN")
	}
	if err := run(*base, *token, *query, *out, *chromium, *width, *height, *inspect, *full); err != nil {
		fmt.Fprintln(os.Stderr, "dashshot:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(base, token, query, out, chromium string, width, height int, inspect, full bool) error {
	if token == "" {
		return errors.New("no admin token: give -token or set JOBCAST_ADMIN_TOKEN")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.WindowSize(width, height), chromedp.Flag("hide-scrollbars", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	base = strings.TrimRight(base, "/")
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.EmulateViewport(int64(width), int64(height)),
		chromedp.Navigate(base + "/dashboard?" + query),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(".status.live")),
	}
	if inspect {
		steps = append(steps, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			n, err := chromedp.Evaluate[int](`document.querySelectorAll('#live-jobs button').length`)(ctx, t)
			if err != nil || n == 0 {
				return err
			}
			if _, err := chromedp.Click(chromedp.CSS("#live-jobs button"))(ctx, t); err != nil {
				return err
			}
			_, err = chromedp.WaitVisible(chromedp.ID("job-timeline"))(ctx, t)
			return err
		}))
	}
	// Back to the top, and let the charts settle after the last update.
	steps = append(steps, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)(ctx, t)
		return err
	}), chromedp.Sleep(500*time.Millisecond))
	if err := chromedp.Do(ctx, steps...); err != nil {
		return err
	}
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		return err
	}
	return os.WriteFile(out, png, 0o644)
}
