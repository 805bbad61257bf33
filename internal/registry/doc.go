// Package registry is the model registry in Redis: which models exist, where
// they come from (file:// or hf://), their pinned revision, pool and batch
// limit. The CLI writes it; workers and the API read it. It knows nothing of
// how models are loaded and imports no model code.
package registry
