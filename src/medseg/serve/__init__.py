"""Services on top of the library: the DICOM node (`DicomNode`)."""

from medseg.serve.dicom_node import Destination, DicomNode, NodeSettings

__all__ = ["Destination", "DicomNode", "NodeSettings"]
