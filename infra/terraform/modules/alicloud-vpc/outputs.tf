output "vpc_id" {
  description = "Id of the VPC."
  value       = alicloud_vpc.this.id
}

output "vswitch_id" {
  description = "Id of the vSwitch."
  value       = alicloud_vswitch.this.id
}

output "zone_id" {
  description = "Zone of the vSwitch."
  value       = alicloud_vswitch.this.zone_id
}

output "cidr_block" {
  description = "CIDR block of the VPC."
  value       = alicloud_vpc.this.cidr_block
}

output "vswitch_cidr_block" {
  description = "CIDR block of the vSwitch."
  value       = alicloud_vswitch.this.cidr_block
}
