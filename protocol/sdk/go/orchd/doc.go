// Package orchd is the Go SDK for orchd extensions: executables named
// orchd-ext-TYPE that orchd starts once per action (or once per session of
// actions) and talks to in JSON lines over stdin and stdout, as
// protocol/PROTOCOL.md defines.
//
// An extension declares itself in an Extension and hands it to Main:
//
//	type config struct {
//		Who string `json:"who" orchd:"required,nonempty" desc:"who to greet"`
//	}
//
//	func apply(ctx context.Context, a *orchd.Action) (orchd.Result, error) {
//		var cfg config
//		if err := a.DecodeConfig(&cfg); err != nil {
//			return orchd.Result{}, err // the errors, by key path
//		}
//		a.Output("message", "hello, "+cfg.Who)
//		a.SetState(map[string]string{"who": cfg.Who})
//		return orchd.Changed("greeted %s", cfg.Who), nil
//	}
//
//	func main() {
//		orchd.Main(&orchd.Extension{
//			Name: "hello", Version: "0.1.0",
//			ConfigSchema: orchd.SchemaOf(config{}),
//			Apply:        apply,
//		})
//	}
//
// The SDK does the rest of the protocol: the handshake and version
// negotiation (§5), framing and its limits (§4), describe (§7.1), values
// in files both ways (§4.1), sessions (§7.6), fetch requests (§6.3),
// cancellation by message, signal or end of input through the handler's
// context (§9), and the exit status (§8). Nothing but protocol lines
// reaches stdout.
//
// ParseLine is the SDK's parser; it reaches the verdicts of the shared
// conformance vectors (protocol/vectors) and checks every line the SDK
// reads and writes.
package orchd
