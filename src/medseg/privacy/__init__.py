"""DICOM de-identification: PS3.15's Basic Application Level Confidentiality Profile
(`medseg.privacy.profile`), applied to data sets (`medseg.privacy.deidentify`) and to whole
folders (`medseg.privacy.anonymize`)."""
