package tusupload

import (
	"regexp"
	"strings"
)

// Upload ids, derived exactly as tusd v2 and its s3store do (read in
// tusd v2.9.1: handler.extractIDFromPath and s3store.splitIds):
//
//   - tusd's id is the request path (already decoded: %2F is a '/') with
//     its leading and trailing slashes trimmed, and nothing else: no
//     cleaning, so "a+b/c" and "a+b/." are ids too;
//   - s3store splits the id at its LAST '+': the object id before it
//     names the data object and X.info, the multipart id after it the
//     S3 multipart upload;
//   - s3store makes the object id with tusd's uid (16 random bytes in
//     hex) and appends the store's multipart upload id.
//
// An ownership check that derives the id differently checks another
// upload than the one tusd then serves. So every path is reduced here, with
// tusd's own trimming, to one id of exactly the shape s3store creates —
// 32 lowercase hex digits, one '+', a multipart id of URL-safe characters
// with no '/' and no '+' — and anything else names no upload at all,
// before any lookup.
var (
	objectIDRe    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	multipartIDRe = regexp.MustCompile(`^[A-Za-z0-9._~=-]{1,512}$`)
)

// uploadID returns the upload id tusd reads from the request path p
// (r.URL.Path) and its object id. ok is false when p names no upload
// s3store could have created.
func uploadID(p string) (id, object string, ok bool) {
	id = strings.Trim(p, "/") // tusd's extractIDFromPath
	object, multipart, found := strings.Cut(id, "+")
	if !found || !objectIDRe.MatchString(object) || !multipartIDRe.MatchString(multipart) {
		// multipartIDRe admits neither '/' nor a second '+': the first
		// '+' is the last, where s3store splits.
		return "", "", false
	}
	return id, object, true
}
