// Package registry is sailmaker's side of the OCI registry: the embedded
// registry server, image reference policy, tag ownership and pushes.
package registry
