// The slow server's job in Go's net/http, for the bench to set beside it: every
// request is answered "ok\n" after -delay seconds, keep-alive; it listens on
// 127.0.0.1, port 0, and prints {"host", "port", "pid"} once listening.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	delay := flag.Float64("delay", 2.0, "seconds before each answer")
	flag.Parse()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wait := time.Duration(*delay * float64(time.Second))
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(wait)
		w.Write([]byte("ok\n"))
	})}
	ready, _ := json.Marshal(map[string]interface{}{
		"host": "127.0.0.1", "port": listener.Addr().(*net.TCPAddr).Port, "pid": os.Getpid()})
	fmt.Println(string(ready))
	server.Serve(listener)
}
