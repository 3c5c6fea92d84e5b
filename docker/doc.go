// Package docker holds sailmaker's deployment: the service image
// (Dockerfile), the worker image (buildkitd/) and the Kubernetes manifests
// (k8s/), described in docs/deploy.md. Its test decodes every manifest into
// the typed Kubernetes API objects and checks them against the config they
// ship.
package docker
