// The seed's fixed client in Node.js: one keep-alive http.Agent, at most 2 free
// sockets kept, idle sockets closed after 500 ms, every request with a timeout.
// Usage: node shared_agent.js URL [SECONDS]; same traffic as agent_per_request.js.
const http = require("http");
const [url, seconds = "30"] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 2, timeout: 500 });
function fire() {
  http.get(url, { agent, timeout: 5000 }, (res) => res.resume())
    .on("timeout", function () { this.destroy(new Error("timeout")); })
    .on("error", (e) => console.error(e.message));
}
const timer = setInterval(() => {
  fire();
  for (let i = Math.floor(Math.random() * 4); i > 0; i--) fire();
}, 50);
setTimeout(() => { clearInterval(timer); agent.destroy(); }, Number(seconds) * 1000);
