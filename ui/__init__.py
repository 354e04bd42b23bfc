"""percepnet.ui"""
