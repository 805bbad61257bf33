// Package deploy holds how Hokusai is shipped, and the tests that keep it
// shipped right. It has no runtime code and nothing imports it.
//
// The directory holds:
//   - api.Dockerfile, worker.Dockerfile: static, non-root images of the two
//     tiers (the worker image also carries the hokusai CLI);
//   - terraform/: ECS, ALB, ElastiCache and IAM for AWS;
//   - registry.yaml: the model registry seed applied by `hokusai models apply`;
//   - the tests, which parse the Terraform (hashicorp/hcl/v2), the root
//     docker-compose.yml (compose-spec/compose-go/v2), the Dockerfiles and the
//     Makefile. They fail if the HuggingFace token or a Secrets Manager
//     permission reaches anything but the worker, if the HTTPS listener stops
//     forwarding the API's routes, or if an image is built differently from
//     `make build`. Each rule has mutation cases proving that it can fail.
package deploy
