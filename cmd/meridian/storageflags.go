package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/shared/datadir"
	"github.com/meridian-video/meridian/shared/storage"
)

// storageFlags configure where an edge's recordings go and where egress
// jobs work (docs/egress.md). Every flag also reads MERIDIAN_<FLAG>; the
// S3 keys fall back to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, so
// secrets need not be on the command line.
type storageFlags struct {
	fs                   *flag.FlagSet
	dev                  bool
	dataDir              string
	dir, region          string
	s3Endpoint, s3Bucket string
	s3RegionTag          string
	s3BucketRegion       string
	s3AccessKey          string
	s3SecretKey          string
	s3PathStyle          bool
	noEgress             bool
}

func (s *storageFlags) register(fs *flag.FlagSet, dev bool) {
	s.fs, s.dev = fs, dev
	if !dev {
		// dev shares the control plane's --data directory.
		fs.StringVar(&s.dataDir, "data", "./meridian-edge-data", "edge data directory (egress work files; recordings by default)")
	}
	fs.StringVar(&s.dir, "storage-dir", "", "directory recordings are stored in, served back with signed download URLs (default <data>/recordings)")
	fs.StringVar(&s.region, "storage-region", "", "region the --storage-dir disk is in; pinned rooms only store there if allowed (default: the edge's region)")
	fs.StringVar(&s.s3Endpoint, "s3-endpoint", "", "S3-compatible endpoint for recordings, preferred over --storage-dir (https://host[:port]; http:// for a local server)")
	fs.StringVar(&s.s3Bucket, "s3-bucket", "", "S3 bucket for recordings")
	fs.StringVar(&s.s3RegionTag, "s3-region-tag", "", "Meridian region the bucket's data is in (default: --storage-region)")
	fs.StringVar(&s.s3BucketRegion, "s3-bucket-region", "", "S3 signing region of the bucket, e.g. eu-west-3 (default: discovered)")
	fs.StringVar(&s.s3AccessKey, "s3-access-key", "", "S3 access key (or AWS_ACCESS_KEY_ID)")
	fs.StringVar(&s.s3SecretKey, "s3-secret-key", "", "S3 secret key (prefer MERIDIAN_S3_SECRET_KEY or AWS_SECRET_ACCESS_KEY)")
	fs.BoolVar(&s.s3PathStyle, "s3-path-style", true, "path-style S3 requests (MinIO and most self-hosted servers)")
	fs.BoolVar(&s.noEgress, "no-egress", false, "run no recordings, RTMP or HLS on this edge")
}

// lockData takes the edge's --data lock before anything is written there
// (egress work files, recordings by default), so that a second edge given
// the same directory stops at once. An edge running no egress uses no
// data directory, and dev's edge shares the control plane's, which dev
// has locked: nil then.
func (s *storageFlags) lockData() (*datadir.Lock, error) {
	if s.noEgress || s.dev {
		return nil, nil
	}
	return datadir.Acquire(s.dataDir)
}

// config builds the edge's egress configuration; edgeRegion is the edge's
// --region.
func (s *storageFlags) config(edgeRegion string) (edgenode.EgressConfig, error) {
	if s.noEgress {
		return edgenode.EgressConfig{}, nil
	}
	data := s.dataDir
	if s.dev {
		data = "meridian-data"
		if f := s.fs.Lookup("data"); f != nil {
			data = f.Value.String()
		}
	}
	region := s.region
	if region == "" {
		region = edgeRegion
	}
	dir := s.dir
	if dir == "" {
		dir = filepath.Join(data, "recordings")
	}
	var targets []storage.Target
	if s.s3Endpoint != "" || s.s3Bucket != "" {
		t, err := s.s3(region)
		if err != nil {
			return edgenode.EgressConfig{}, err
		}
		targets = append(targets, t)
	}
	local, err := storage.NewLocal(storage.LocalConfig{Region: region, Dir: dir})
	if err != nil {
		return edgenode.EgressConfig{}, fmt.Errorf("--storage-dir: %w", err)
	}
	targets = append(targets, local)
	return edgenode.EgressConfig{WorkDir: filepath.Join(data, "egress"), Storage: targets}, nil
}

func (s *storageFlags) s3(region string) (storage.Target, error) {
	if s.s3Endpoint == "" || s.s3Bucket == "" {
		return nil, errors.New("--s3-endpoint and --s3-bucket go together")
	}
	u, err := url.Parse(s.s3Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("--s3-endpoint %q: must be https://host[:port] (or http:// for a server on a trusted network)", s.s3Endpoint)
	}
	access, secret := s.s3AccessKey, s.s3SecretKey
	if access == "" {
		access = os.Getenv("AWS_ACCESS_KEY_ID")
	}
	if secret == "" {
		secret = os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	if access == "" || secret == "" {
		return nil, errors.New("S3 storage needs --s3-access-key and --s3-secret-key (or MERIDIAN_S3_ACCESS_KEY/MERIDIAN_S3_SECRET_KEY, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
	}
	tag := s.s3RegionTag
	if tag == "" {
		tag = region
	}
	return storage.NewS3(storage.S3Config{Region: tag, Endpoint: u.Host, Secure: u.Scheme == "https", Bucket: s.s3Bucket,
		BucketRegion: s.s3BucketRegion, AccessKey: access, SecretKey: secret, PathStyle: s.s3PathStyle})
}
