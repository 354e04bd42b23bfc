"""percepnet.weights"""
