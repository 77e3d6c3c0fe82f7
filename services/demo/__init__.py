"""services/demo"""
