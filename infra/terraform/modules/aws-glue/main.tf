# A Glue Data Catalog database so engines that read the catalog (Athena, Spark, EMR) find skewless's offline tables.

resource "aws_glue_catalog_database" "this" {
  catalog_id   = var.catalog_id
  name         = var.database_name
  description  = var.description
  location_uri = var.location_uri
}
