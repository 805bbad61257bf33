package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/hokusai-ai/inference-queue/internal/s3url"
)

// Store reads and writes objects.
type Store struct {
	c *s3.Client
}

// New builds a Store on cfg; pathStyle addresses buckets in the URL's
// path (http://host/bucket/key), as S3-compatible stores expect.
func New(cfg aws.Config, pathStyle bool) *Store {
	return &Store{c: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle })}
}

// FromEnv builds a Store from the standard chain (environment, shared
// files, the ECS task role, IMDS), path-style when the environment names
// an endpoint (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL).
func FromEnv(ctx context.Context, getenv func(string) string) (*Store, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration: %w", err)
	}
	return New(cfg, getenv("AWS_ENDPOINT_URL_S3") != "" || getenv("AWS_ENDPOINT_URL") != ""), nil
}

// Object is what a read needs to know of an object before its bytes.
type Object struct {
	Size int64
	ETag string
	// Gzip says the object is stored gzip-compressed (Content-Encoding).
	Gzip bool
}

// Stat reads an object's size, ETag and encoding.
func (s *Store) Stat(ctx context.Context, u s3url.URL) (Object, error) {
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.Bucket, Key: &u.Key})
	if err != nil {
		return Object{}, describe("HeadObject", u, err)
	}
	enc := strings.ToLower(aws.ToString(out.ContentEncoding))
	return Object{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		Gzip: strings.Contains(enc, "gzip")}, nil
}

// rangeRetries is how often a range whose transfer broke off is asked for
// again from where it broke (the SDK retries a request that fails whole).
const rangeRetries = 3

// ranges reads an object one range at a time, each a request of its own
// that must match the ETag the reading started with, so an object
// replaced meanwhile fails the read instead of mixing two files.
type ranges struct {
	s     *Store
	ctx   context.Context
	u     s3url.URL
	obj   Object
	size  int64 // of a range
	off   int64 // next byte to read
	body  io.ReadCloser
	end   int64 // of the open range, exclusive
	tries int
}

// Reader reads obj's bytes in order, rangeSize bytes a request.
func (s *Store) Reader(ctx context.Context, u s3url.URL, obj Object, rangeSize int64) io.ReadCloser {
	return &ranges{s: s, ctx: ctx, u: u, obj: obj, size: rangeSize}
}

func (r *ranges) Read(p []byte) (int, error) {
	for {
		if r.off >= r.obj.Size {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		switch {
		case err == io.EOF && r.off == r.end, err == nil && r.off == r.end:
			_ = r.body.Close()
			r.body, r.tries = nil, 0
		case err != nil:
			_ = r.body.Close()
			r.body = nil
			if r.tries++; r.tries > rangeRetries || r.ctx.Err() != nil {
				return n, describe("GetObject", r.u, err)
			}
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *ranges) open() error {
	r.end = min(r.off+r.size, r.obj.Size)
	rng := fmt.Sprintf("bytes=%d-%d", r.off, r.end-1)
	in := &s3.GetObjectInput{Bucket: &r.u.Bucket, Key: &r.u.Key, Range: &rng}
	if r.obj.ETag != "" {
		in.IfMatch = &r.obj.ETag
	}
	out, err := r.s.c.GetObject(r.ctx, in)
	if err != nil {
		return describe("GetObject", r.u, err)
	}
	r.body = out.Body
	return nil
}

func (r *ranges) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// Part is one uploaded part of a multipart upload.
type Part struct {
	N    int32  `json:"n"`
	ETag string `json:"etag"`
}

// Create starts a multipart upload to u and returns its id.
func (s *Store) Create(ctx context.Context, u s3url.URL, contentType string) (string, error) {
	out, err := s.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &u.Bucket, Key: &u.Key,
		ContentType: &contentType})
	if err != nil {
		return "", describe("CreateMultipartUpload", u, err)
	}
	return aws.ToString(out.UploadId), nil
}

// UploadPart uploads part n of upload id. Uploading a part again replaces it.
func (s *Store) UploadPart(ctx context.Context, u s3url.URL, id string, n int32, b []byte) (Part, error) {
	out, err := s.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &u.Bucket, Key: &u.Key, UploadId: &id,
		PartNumber: &n, Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
	if err != nil {
		return Part{}, describe("UploadPart", u, err)
	}
	return Part{N: n, ETag: aws.ToString(out.ETag)}, nil
}

// Complete completes upload id from parts. An upload that is no more
// because an earlier run completed it counts as completed when the object
// it made is there with the size the parts add up to.
func (s *Store) Complete(ctx context.Context, u s3url.URL, id string, parts []Part, size int64) error {
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(p.N), ETag: aws.String(p.ETag)}
	}
	_, err := s.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &u.Bucket, Key: &u.Key,
		UploadId: &id, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil && code(err) == "NoSuchUpload" {
		if obj, serr := s.Stat(ctx, u); serr == nil && obj.Size == size {
			return nil
		}
	}
	if err != nil {
		return describe("CompleteMultipartUpload", u, err)
	}
	return nil
}

// Abort aborts upload id; one already gone is not an error.
func (s *Store) Abort(ctx context.Context, u s3url.URL, id string) error {
	_, err := s.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.Bucket, Key: &u.Key, UploadId: &id})
	if err != nil && code(err) != "NoSuchUpload" {
		return describe("AbortMultipartUpload", u, err)
	}
	return nil
}

// Put writes a small object whole.
func (s *Store) Put(ctx context.Context, u s3url.URL, b []byte, contentType string) error {
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.Bucket, Key: &u.Key, Body: bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))), ContentType: &contentType})
	if err != nil {
		return describe("PutObject", u, err)
	}
	return nil
}

// Error is a failed S3 operation: which, on what, and S3's answer.
type Error struct {
	Op, Code, Message string
	URL               s3url.URL
	// Final says another try cannot succeed (access denied, no such
	// bucket or key, the object changed).
	Final bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("S3 %s %s: %s: %s", e.Op, e.URL, e.Code, e.Message)
}

// finalCodes are S3's answers that a retry cannot change.
var finalCodes = map[string]bool{"AccessDenied": true, "NoSuchKey": true, "NoSuchBucket": true, "NotFound": true,
	"PreconditionFailed": true, "InvalidRange": true, "InvalidObjectState": true, "Forbidden": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "EntityTooSmall": true, "InvalidPart": true}

// describe turns the SDK's error into an Error built from S3's code and
// message alone: the SDK's own text can carry a request's URL.
func describe(op string, u s3url.URL, err error) error {
	e := &Error{Op: op, URL: u, Code: "RequestFailed", Message: "the request did not complete"}
	var api smithy.APIError
	var status interface{ HTTPStatusCode() int }
	switch {
	case errors.As(err, &api):
		e.Code, e.Message = api.ErrorCode(), api.ErrorMessage()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Code, e.Message = "Canceled", err.Error()
	}
	if errors.As(err, &status) {
		switch s := status.HTTPStatusCode(); s {
		case http.StatusForbidden, http.StatusNotFound, http.StatusPreconditionFailed, http.StatusRequestedRangeNotSatisfiable:
			e.Final = true
			if e.Message == "" || e.Code == "" {
				e.Code, e.Message = http.StatusText(s), http.StatusText(s)
			}
		}
	}
	e.Final = e.Final || finalCodes[e.Code]
	if len(e.Message) > 200 {
		e.Message = e.Message[:200]
	}
	return e
}

// code is S3's error code in err, if any.
func code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// IsNoSuchUpload reports whether err says a multipart upload is no more
// (completed or aborted).
func IsNoSuchUpload(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == "NoSuchUpload"
}

// IsFinal reports whether err is an S3 failure no retry can mend.
func IsFinal(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Final
}
