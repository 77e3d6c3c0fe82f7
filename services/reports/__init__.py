"""services/reports"""
