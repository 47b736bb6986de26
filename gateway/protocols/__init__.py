"""Server-side codecs for AWS wire protocols, driven by botocore's models.

* ``query``: ``ec2`` and ``query`` (EC2, STS) requests and XML responses;
* ``rest_xml``: ``rest-xml`` (S3) requests and responses;
* ``json_protocol``: ``json`` (Cost Explorer, CUR);
* ``errors``: the typed ``ProtocolError``s the decoders raise;
* ``models``: the cached botocore service models.
"""

from .errors import ProtocolError
from .json_protocol import decode_json, encode_json, encode_json_error
from .models import operation, service_model
from .query import decode_query, encode_query_error, encode_query_response
from .rest_xml import RestResponse, decode_rest_xml, encode_rest_xml, encode_rest_xml_error

__all__ = [
    'ProtocolError',
    'RestResponse',
    'decode_json',
    'decode_query',
    'decode_rest_xml',
    'encode_json',
    'encode_json_error',
    'encode_query_error',
    'encode_query_response',
    'encode_rest_xml',
    'encode_rest_xml_error',
    'operation',
    'service_model',
]
