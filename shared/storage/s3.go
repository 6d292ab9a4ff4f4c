package storage

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config configures an S3-compatible bucket (AWS, MinIO, Ceph, R2...).
type S3Config struct {
	Name   string // default "s3"
	Region string // required: the Meridian region the bucket's data is in
	// Endpoint is host[:port] ("s3.eu-west-3.amazonaws.com"); Secure
	// selects https.
	Endpoint string
	Secure   bool
	Bucket   string
	// BucketRegion is the S3 region name the endpoint expects in
	// signatures ("eu-west-3"); empty lets the client discover it.
	BucketRegion string
	AccessKey    string
	SecretKey    string
	// PathStyle forces path-style requests (MinIO, most self-hosted servers).
	PathStyle bool
	// Transport overrides the HTTP transport (tests, custom CAs).
	Transport http.RoundTripper
}

// S3 stores files in a bucket with github.com/minio/minio-go/v7.
type S3 struct {
	cfg S3Config
	c   *minio.Client
}

var _ Target = (*S3)(nil)

// NewS3 builds the client (no network access until used).
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Name == "" {
		cfg.Name = "s3"
	}
	switch {
	case cfg.Region == "":
		return nil, errors.New("storage: s3 target needs a region tag")
	case cfg.Endpoint == "":
		return nil, errors.New("storage: s3 target needs an endpoint")
	case cfg.Bucket == "":
		return nil, errors.New("storage: s3 target needs a bucket")
	}
	opts := &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.BucketRegion,
		Transport: cfg.Transport,
	}
	if cfg.PathStyle {
		opts.BucketLookup = minio.BucketLookupPath
	}
	c, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("storage: s3 client: %w", err)
	}
	return &S3{cfg: cfg, c: c}, nil
}

func (s *S3) Name() string   { return s.cfg.Name }
func (s *S3) Region() string { return s.cfg.Region }

// Put uploads the file (multipart for large files) and removes the local copy.
func (s *S3) Put(ctx context.Context, key, localPath, contentType string) (int64, error) {
	k, err := CleanKey(key)
	if err != nil {
		return 0, err
	}
	info, err := s.c.FPutObject(ctx, s.cfg.Bucket, k, localPath, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return 0, fmt.Errorf("storage: upload %s to %s: %w", k, s.cfg.Name, err)
	}
	return info.Size, nil
}

// Get downloads key into dst.
func (s *S3) Get(ctx context.Context, key, dst string) error {
	k, err := CleanKey(key)
	if err != nil {
		return err
	}
	if err := s.c.FGetObject(ctx, s.cfg.Bucket, k, dst, minio.GetObjectOptions{}); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		return fmt.Errorf("storage: download %s from %s: %w", k, s.cfg.Name, err)
	}
	return nil
}

// Delete removes key.
func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := CleanKey(key)
	if err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.cfg.Bucket, k, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("storage: delete %s from %s: %w", k, s.cfg.Name, err)
	}
	return nil
}

// Size reports key's size.
func (s *S3) Size(ctx context.Context, key string) (int64, error) {
	k, err := CleanKey(key)
	if err != nil {
		return 0, err
	}
	info, err := s.c.StatObject(ctx, s.cfg.Bucket, k, minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		return 0, err
	}
	return info.Size, nil
}

// PresignGet returns a presigned download URL valid for ttl (the S3
// counterpart of SignURL).
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration) (*url.URL, error) {
	k, err := CleanKey(key)
	if err != nil {
		return nil, err
	}
	return s.c.PresignedGetObject(ctx, s.cfg.Bucket, k, ttl, nil)
}

// maxPresign is the longest validity S3 accepts for a presigned URL.
const maxPresign = 7 * 24 * time.Hour

// AuthorizeRedirect checks a download request signed for this target with
// SignURL (the same fileUrl form as a local file's, so the control plane
// needs no S3 credentials) and returns a presigned URL of the object to
// redirect to, valid until the signed URL expires (at most 7 days).
// Errors are *DownloadError: 404 for a bad key or a missing object, 401
// without a signature, 403 for a bad or expired one.
func (s *S3) AuthorizeRedirect(ctx context.Context, pub ed25519.PublicKey, urlPath, exp, sig string, now time.Time) (*url.URL, error) {
	key, err := authorizeDownload(pub, s.Name(), urlPath, exp, sig, now)
	if err != nil {
		return nil, err
	}
	if _, err := s.Size(ctx, key); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, &DownloadError{http.StatusNotFound, "not found"}
		}
		return nil, &DownloadError{http.StatusBadGateway, "object storage unavailable"}
	}
	e, _ := strconv.ParseInt(exp, 10, 64) // checked by authorizeDownload
	ttl := min(time.Unix(e, 0).Sub(now), maxPresign)
	u, err := s.PresignGet(ctx, key, max(ttl, time.Second))
	if err != nil {
		return nil, &DownloadError{http.StatusBadGateway, "cannot presign the object"}
	}
	return u, nil
}

// EnsureBucket creates the bucket if it does not exist (dev setups).
func (s *S3) EnsureBucket(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return s.c.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.BucketRegion})
}

func isNotFound(err error) bool {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound
	}
	return false
}
