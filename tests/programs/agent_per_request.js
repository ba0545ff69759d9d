// The seed's faulty client in Node.js: a new keep-alive http.Agent per request,
// kept forever, never destroyed. Usage: node agent_per_request.js URL [SECONDS]
// Periodic requests every 50 ms plus 0..3 random extra ones; stops after SECONDS (default 30).
const http = require("http");
const [url, seconds = "30"] = process.argv.slice(2);
const agents = [];
function fire() {
  const agent = new http.Agent({ keepAlive: true });
  agents.push(agent);
  http.get(url, { agent }, (res) => res.resume()).on("error", (e) => console.error(e.message));
}
const timer = setInterval(() => {
  fire();
  for (let i = Math.floor(Math.random() * 4); i > 0; i--) fire();
}, 50);
setTimeout(() => { clearInterval(timer); agents.forEach((a) => a.destroy()); }, Number(seconds) * 1000);
