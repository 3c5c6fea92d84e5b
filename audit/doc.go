// Package audit answers questions about what is in the internal registry:
// which images there are and where they came from (images), everything
// known about one image (show), whether every image is what sailmaker built
// and recorded (verify), which images contain a Go module or a Debian
// package (uses), what changed between two builds (diff), and the push
// ledger (ledger).
//
// It only reads: the registry through go-containerregistry, the
// attestations attached to images (OCI referrers: in-toto provenance and
// SPDX SBOMs, cosign-style signatures) and the ledger in the store. Content
// addressed by digest never changes, so manifests, configs and attestation
// documents are cached by digest, in memory and on disk. Reads run
// concurrently with a bound, are retried on 5xx, and an image that still
// cannot be read is left out of the answer and named in its warnings
// instead of failing the whole query.
package audit
