package topology

// Headers the connector sets on a function invocation for a NATS message,
// as OpenFaaS's connector-sdk does, plus the JetStream position.
const (
	HeaderTopic     = "X-Topic"           // the subject the message was published on
	HeaderConnector = "X-Connector"       // "pulsevault"
	HeaderStream    = "X-Nats-Stream"     // the stream it was stored in
	HeaderStreamSeq = "X-Nats-Stream-Seq" // its sequence there: a stable id for idempotency
	HeaderDelivered = "X-Nats-Delivered"  // 1 on the first delivery, 2 on the first retry...
	HeaderSchedule  = "X-Schedule"        // set instead of the above on a scheduled invocation
)

// HeaderOffload is the media function's answer header that tells the public
// origin to serve the object from the store itself.
const HeaderOffload = "X-Pulsevault-Offload"

// NATSHeaderPrefix starts the headers NATS reserves for itself (Nats-Msg-Id,
// Nats-Expected-..., ...): never copied from a message to an HTTP request or
// back.
const NATSHeaderPrefix = "Nats-"
