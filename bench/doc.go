// Package bench measures sailmaker against the two other ways to get the
// same images, side by side in one run so that the ratios hold on a noisy
// machine:
//
//   - sailmaker: the real CLI (a subprocess, so its peak memory is its own)
//     against the real buildkitd and registry;
//   - plain: the Dockerfile in this folder, built with buildctl against the
//     same buildkitd and pushed by BuildKit to the same registry, the way
//     image maintainers build Istio's images without sailmaker;
//   - floor: upstream's make targets run on the host with a Go build cache
//     in the same state, the layers written with builder/layer and pushed
//     with go-containerregistry: the physical limit for the work.
//
// Each path builds the same recipe in four scenarios (cold, no-op,
// incremental, base bump). Everything is pushed through a counting proxy in
// front of the registry (Proxy), so bytes uploaded are measured at the wire
// the same way for all three.
package bench
