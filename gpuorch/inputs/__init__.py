"""Fetching job inputs safely: allow-listed S3 objects and public HTTPS URLs, checked as images."""

from gpuorch.inputs.addresses import Resolver, address_refusal, resolve_public, system_resolver
from gpuorch.inputs.errors import InputError, InputRejected, InputUnavailable
from gpuorch.inputs.fetch import FetchedImage, fetch_image, fetch_input
from gpuorch.inputs.image import ImageInfo, decode_image, inspect_image
from gpuorch.inputs.policy import InputPolicy
from gpuorch.inputs.uri import HttpUri, S3Uri, parse_input_uri

__all__ = [
    "FetchedImage",
    "HttpUri",
    "ImageInfo",
    "InputError",
    "InputPolicy",
    "InputRejected",
    "InputUnavailable",
    "Resolver",
    "S3Uri",
    "address_refusal",
    "decode_image",
    "fetch_image",
    "fetch_input",
    "inspect_image",
    "parse_input_uri",
    "resolve_public",
    "system_resolver",
]
