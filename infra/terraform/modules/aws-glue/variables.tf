variable "database_name" {
  description = "Glue Data Catalog database for skewless's offline tables (lowercase letters, digits, underscores)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.database_name))
    error_message = "database_name must be 1-255 lowercase letters, digits or underscores."
  }
}

variable "location_uri" {
  description = "Default location of the database's tables, e.g. s3://bucket/offline/. Null leaves it unset."
  type        = string
  default     = null
}

variable "description" {
  description = "Description stored with the database."
  type        = string
  default     = "skewless offline feature tables"
}

variable "catalog_id" {
  description = "Data Catalog (account id) to create the database in. Null uses the provider's account."
  type        = string
  default     = null
}
