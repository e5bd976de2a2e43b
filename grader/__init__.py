"""The VAE kit's grader: releases the assignment from the reference and checks submissions."""
