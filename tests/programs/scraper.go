// The seed's metrics scraper in Go, both ways, against the URL it is given, for a number of seconds:
//
//	scraper faulty URL SECONDS   a new http.Client and Transport per request (the production bug):
//	                             each transport keeps its idle connection for ever
//	scraper fixed URL SECONDS    one shared client: keep-alive, idle timeout, at most 5 idle connections
//	                             and 2 per host, timeouts, idle connections closed after an error
//
// A request starts every 50 ms, with 0 to 3 more at once now and then. HTTPS trusts SSL_CERT_FILE
// (Go reads it on Linux), which the harness sets to its CA under --tls. Prints "N requests, M failed".
package main

import (
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) != 4 || (os.Args[1] != "faulty" && os.Args[1] != "fixed") {
		fmt.Fprintln(os.Stderr, "usage: scraper faulty|fixed URL SECONDS")
		os.Exit(2)
	}
	mode, url := os.Args[1], os.Args[2]
	seconds, err := strconv.ParseFloat(os.Args[3], 64)
	if err != nil || seconds <= 0 || seconds > 3600 {
		fmt.Fprintf(os.Stderr, "scraper: SECONDS %q: give a number from 0 to 3600\n", os.Args[3])
		os.Exit(2)
	}
	shared := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        5,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     500 * time.Millisecond,
		},
	}
	var kept []*http.Client // the faulty mode's clients, kept referenced as the production code's were
	var lock sync.Mutex
	var requests, failed int64
	get := func() {
		client := shared
		if mode == "faulty" {
			client = &http.Client{Transport: &http.Transport{}} // no timeout, a pool of its own
			lock.Lock()
			kept = append(kept, client)
			lock.Unlock()
		}
		atomic.AddInt64(&requests, 1)
		response, err := client.Get(url)
		if err != nil {
			atomic.AddInt64(&failed, 1)
			if mode == "fixed" {
				shared.CloseIdleConnections()
			}
			return
		}
		io.Copy(io.Discard, response.Body)
		response.Body.Close()
	}
	random := rand.New(rand.NewSource(1))
	var running sync.WaitGroup
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for tick := time.NewTicker(50 * time.Millisecond); time.Now().Before(end); <-tick.C {
		extra := 0
		if random.Intn(4) == 0 {
			extra = random.Intn(4)
		}
		for i := 0; i <= extra; i++ {
			running.Add(1)
			go func() { defer running.Done(); get() }()
		}
	}
	running.Wait()
	fmt.Printf("%d requests, %d failed\n", requests, failed)
}
