// ImageSource: where `offcore image convert` reads an image from, either a
// registry (HTTP API v2) or an OCI layout directory. Both resolve a
// reference to one linux/amd64 manifest plus its config, and copy blobs to
// local files with their digests verified.
#pragma once

#include <memory>
#include <string>

#include "image/oci.h"
#include "image/registry_client.h"

namespace offcore::oci {

struct ResolvedImage {
  Reference ref;
  std::string manifest_digest;
  Manifest manifest;
  std::string config_json;
  ImageConfig config;
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual Result<ResolvedImage> resolve() = 0;
  virtual Status fetchBlob(const Descriptor& blob, const std::string& path, const ByteProgress& progress) = 0;
};

Result<std::unique_ptr<ImageSource>> openImageSource(const Reference& ref, const RegistryOptions& options);

}  // namespace offcore::oci
