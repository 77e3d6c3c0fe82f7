"""services/batch"""
