// Package topology names what PulseVault's parts share on the bus and in the
// store: every JetStream stream, subject, durable consumer, KV bucket and
// internal header, and the layout of object keys in each bucket. It is a
// leaf (standard library only), so a function can name a subject without
// importing the package that consumes it. bootstrap creates the streams
// declared here; nothing else spells one of these names.
package topology

// JetStream streams. bootstrap creates all but StreamAsync, which the
// provider creates as a work queue when it starts.
const (
	StreamEvents = "PULSE_EVENTS" // bucket notifications, on the configured event subject
	StreamJobs   = "PULSE_JOBS"   // SubjectJobs.>
	StreamAudit  = "PULSE_AUDIT"  // SubjectAudit.>
	StreamDLQ    = "PULSE_DLQ"    // SubjectDLQ.>
	StreamAsync  = "PULSE_ASYNC"  // SubjectAsyncPrefix + function: queued asynchronous invocations
)

// Subjects.
const (
	// DefaultEventSubject is where the S3 server publishes bucket
	// notifications unless EVENT_SUBJECT says otherwise.
	DefaultEventSubject = "pulse.s3.events"

	SubjectJobs          = "pulse.jobs"               // pulse.jobs.<kind>: work for a function
	SubjectTranscodeJobs = SubjectJobs + ".transcode" // one message per rendition job
	SubjectAudit         = "pulse.audit"              // pulse.audit.<action>: audit events
	SubjectDLQ           = "pulse.dlq"                // pulse.dlq.<durable>: messages that failed every try
	SubjectStatusPrefix  = "pulse.status"             // pulse.status.<id>: live status, core NATS only
	SubjectAsyncPrefix   = "pulse.async."             // + function name
	SubjectLeasePrefix   = "pulse.lease."             // + KV bucket + "." + key: ask a holder to hand over
)

// DeadLetter is the subject where durable's messages go after every try.
func DeadLetter(durable string) string { return SubjectDLQ + "." + durable }

// StatusSubject is the subject of video id's live status changes.
func StatusSubject(id string) string { return SubjectStatusPrefix + "." + id }

// AsyncSubject is the subject of fn's queued asynchronous invocations.
func AsyncSubject(fn string) string { return SubjectAsyncPrefix + fn }

// LeaseSubject is where a process asks the holder of key in the lease
// bucket to hand it over.
func LeaseSubject(bucket, key string) string { return SubjectLeasePrefix + bucket + "." + key }

// Durable consumers that are not a connector's (function, topic) pair.
const (
	DurableAudit                = "audit-append"           // audit-append's own pull consumer on StreamAudit
	DurableTranscodeDeadLetters = "transcode-dead-letters" // transcode's drain of its dead letters
	DurableAsync                = "pulsevault-gateway"     // the provider's async worker
)

// Dead-letter subjects of the consumers above.
var (
	DeadLetterAudit = DeadLetter(DurableAudit)
	DeadLetterAsync = DeadLetter("async")
)

// JetStream KV buckets. Each is created by the package that uses it.
const (
	KVAuditChain    = "AUDIT_CHAIN"          // "head" (state + pending objects), "settled" (revision written out)
	KVAuditIDs      = "AUDIT_IDS"            // one key per appended audit event id, expiring after the dedup window
	KVFinalizeLocks = "PULSE_FINALIZE_LOCKS" // one lease per upload being finalized
	KVUploadLocks   = "PULSE_UPLOAD_LOCKS"   // tusd's per-upload lock
	KVIdentity      = "PULSE_IDENTITY"       // embedded OpenID provider: auth requests, codes, refresh tokens, device codes
	KVIdentityKeys  = "PULSE_IDENTITY_KEYS"  // embedded OpenID provider: signing keys (with rotation overlap) and its token crypto key
)

// Default S3 bucket names (BUCKET_UPLOADS, BUCKET_MEDIA, BUCKET_AUDIT).
const (
	DefaultUploadsBucket = "pulse-uploads" // staging for tus uploads: no lock, no versioning
	DefaultMediaBucket   = "pulse-media"   // Object Lock, COMPLIANCE
	DefaultAuditBucket   = "pulse-audit"   // Object Lock, COMPLIANCE
)
