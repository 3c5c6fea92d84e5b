// Package recipes reads and validates sailmaker's recipe documents (kinds
// Recipe and BaseImage, see docs/recipes.md), embeds the recipes sailmaker
// ships, and derives new Istio recipes from upstream source.
//
// Every problem in a document is reported, each with its file, line and
// dotted field path, as ValidationErrors. Variables (${REGISTRY}, ${VERSION},
// ${TAG}, ${COMMIT}, ${PROXY_REPO_SHA}) are expanded after decoding; image
// references must be fully qualified and on an allowed registry
// (CheckImageRef).
package recipes
