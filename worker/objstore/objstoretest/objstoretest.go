package objstoretest

import (
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/hokusai-ai/inference-queue/worker/objstore"
)

// The fake store's credentials.
const (
	AccessKey = "AKIAHOKUSAITESTKEY01"
	SecretKey = "hokusai/test/secret/key/never+logged+0123"
)

// New serves an S3 store with buckets on loopback until the test ends,
// and returns the client a worker uses (path-style, SigV4-signed with the
// static credentials) and the endpoint.
func New(t testing.TB, buckets ...string) (*objstore.Store, string) {
	t.Helper()
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(hs.Close)
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")}
	return objstore.New(cfg, true), hs.URL
}
