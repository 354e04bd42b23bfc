"""percepnet.app"""
