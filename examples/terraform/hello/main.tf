# A small OpenTofu/Terraform module used by orchd's terraform extension
# tests and examples.  It needs no provider download: terraform_data is
# built in.  apply writes a greeting into `path`; destroy removes it.

terraform {
  required_version = ">= 1.4"
}

variable "name" {
  type        = string
  description = "who to greet"
  default     = "world"
}

variable "path" {
  type        = string
  description = "file written by apply and removed by destroy"
}

variable "token" {
  type        = string
  description = "a secret (exported as a sensitive output)"
  sensitive   = true
  default     = "not-a-secret"
}

variable "delay" {
  type        = number
  description = "seconds the provisioner sleeps before writing (tests of cancel)"
  default     = 0
}

variable "fail" {
  type        = bool
  description = "make the provisioner fail (tests)"
  default     = false
}

resource "terraform_data" "greeting" {
  input = {
    name  = var.name
    path  = var.path
    fail  = var.fail
    delay = var.delay
  }

  provisioner "local-exec" {
    command = self.input.fail ? "echo 'greeting: refusing to write' >&2; exit 1" : "sleep ${self.input.delay}; printf 'hello, %s\\n' \"$NAME\" > \"$FILE\""
    environment = {
      NAME = self.input.name
      FILE = self.input.path
    }
  }

  provisioner "local-exec" {
    when    = destroy
    command = "rm -f \"$FILE\""
    environment = {
      FILE = self.input.path
    }
  }
}

output "greeting" {
  value = "hello, ${var.name}"
}

output "path" {
  value = terraform_data.greeting.output.path
}

output "token" {
  value     = var.token
  sensitive = true
}
